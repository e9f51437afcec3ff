-- Publishes messages: XADD to each message's stream (capped at ARGV[1]
-- entries while the stream has no consumer group, at ARGV[2] when set),
-- and PUBLISH to its channel when someone listens there.
-- KEYS[i] = stream of message i
-- ARGV[1] = max retained without groups, ARGV[2] = MAXLEN ("0" = none),
-- ARGV[2i+1] = channel of message i, ARGV[2i+2] = its wire bytes
local grouped, listeners = {}, {}
for i = 1, #KEYS do
  local s = KEYS[i]
  local g = grouped[s]
  if g == nil then
    g = false
    if redis.call('EXISTS', s) == 1 then
      local t = redis.call('TYPE', s)['ok']
      if t ~= 'stream' then
        return redis.error_reply('WRONGTYPE ' .. s .. ' holds a ' .. t .. ', not a stream')
      end
      g = #redis.call('XINFO', 'GROUPS', s) > 0
    end
    grouped[s] = g
  end
  local ch, data = ARGV[2 * i + 1], ARGV[2 * i + 2]
  if not g then
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
