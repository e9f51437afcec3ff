-- Publishes messages: XADD to each message's stream (capped at ARGV[1]
-- entries while the stream has no consumer group, at ARGV[2] when set), and
-- PUBLISH to its channel when someone listens there. All or none: a key
-- that is not a stream fails the call before anything is added.
-- KEYS[i] = stream of message i
-- ARGV[1] = max retained without groups, ARGV[2] = MAXLEN ("0" = none),
-- ARGV[2i+1] = channel of message i, ARGV[2i+2] = its wire bytes
local grouped, listeners = {}, {}
-- First every stream's type, so a bad key fails the call before any XADD.
for i = 1, #KEYS do
  local s = KEYS[i]
  if grouped[s] == nil then
    local g = false
    if redis.call('EXISTS', s) == 1 then
      local t = redis.call('TYPE', s)['ok']
      if t ~= 'stream' then
        return redis.error_reply('WRONGTYPE ' .. s .. ' holds a ' .. t .. ', not a stream')
      end
      g = #redis.call('XINFO', 'GROUPS', s) > 0
    end
    grouped[s] = g
  end
end
for i = 1, #KEYS do
  local s = KEYS[i]
  local ch, data = ARGV[2 * i + 1], ARGV[2 * i + 2]
  if not grouped[s] then
    redis.call('XADD', s, 'MAXLEN', '~', ARGV[1], '*', 'e', data)
  elseif ARGV[2] ~= '0' then
    redis.call('XADD', s, 'MAXLEN', '~', ARGV[2], '*', 'e', data)
  else
    redis.call('XADD', s, '*', 'e', data)
  end
  local n = listeners[ch]
  if n == nil then
    n = redis.call('PUBSUB', 'NUMSUB', ch)[2]
    listeners[ch] = n
  end
  if n > 0 then redis.call('PUBLISH', ch, data) end
end
return #KEYS
