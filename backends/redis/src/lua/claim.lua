-- Claims work for consumer ARGV[2] of group ARGV[1]: first nacked entries
-- that are due, then (when ARGV[4] > 0) entries other consumers have held
-- unsettled for ARGV[4] ms or more (a strike each). An entry with
-- ARGV[5] strikes goes to the dead-letter stream instead; when ARGV[6] is
-- '1' (the subscription has a dead-letter hook) it is returned as doomed,
-- still pending with this consumer: the caller runs the hook, then moves it.
-- KEYS[1] = stream, KEYS[2] = delayed set, KEYS[3] = strikes hash,
-- KEYS[4] = dead-letter stream
-- ARGV[3] = most entries to claim
-- Returns {dead-lettered count, {id, fields, delivery count, strikes}...,
-- doomed {id, fields, delivery count, strikes}...}.
local stream, delayed, strikes, dlq = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local group, me = ARGV[1], ARGV[2]
local count, idle, maxd = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local hooked = ARGV[6] == '1'
local doomed = {}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out, dead = {}, 0

local function field(fields, name)
  for i = 1, #fields, 2 do
    if fields[i] == name then return fields[i + 1] end
  end
  return ''
end

local function take(id, strike, reason)
  local p = redis.call('XPENDING', stream, group, id, id, 1)
  if #p == 0 then
    redis.call('HDEL', strikes, id)
    return
  end
  local s = tonumber(redis.call('HGET', strikes, id) or '0')
  if strike then s = redis.call('HINCRBY', strikes, id, 1) end
  local e = redis.call('XCLAIM', stream, group, me, 0, id)
  if #e == 0 or not e[1] then
    -- the entry was deleted from the stream: nothing left to deliver
    redis.call('XACK', stream, group, id)
    redis.call('HDEL', strikes, id)
    return
  end
  local deliveries = p[1][4] + 1
  if s >= maxd and hooked then
    doomed[#doomed + 1] = {id, e[1][2], deliveries, s}
    return
  end
  if s >= maxd then
    redis.call('XADD', dlq, '*', 'e', field(e[1][2], 'e'), 'group', group, 'id', id,
      'deliveries', p[1][4], 'reason', reason .. ' ' .. s .. ' times')
    redis.call('XACK', stream, group, id)
    redis.call('HDEL', strikes, id)
    dead = dead + 1
    return
  end
  out[#out + 1] = {id, e[1][2], deliveries, s}
end

local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, count)
for _, id in ipairs(due) do
  redis.call('ZREM', delayed, id)
  take(id, false, 'dropped unsettled or timed out')
end

if idle > 0 and #out < count and redis.call('EXISTS', stream) == 1 then
  for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', stream, group)) do
    local name, pending = nil, 0
    for i = 1, #c, 2 do
      if c[i] == 'name' then name = c[i + 1] elseif c[i] == 'pending' then pending = c[i + 1] end
    end
    if name ~= '~delayed' and pending > 0 and #out < count then
      local ps = redis.call('XPENDING', stream, group, 'IDLE', idle, '-', '+', count - #out, name)
      for _, p in ipairs(ps) do
        take(p[1], true, 'dropped unsettled or timed out')
      end
    end
  end
end
return {dead, out, doomed}
