-- Writes one or more state keys, each with a fresh version, atomically:
-- either every key is written or (a key holds another type) none is.
-- KEYS[1] = version counter, KEYS[2..] = state keys
-- ARGV[2i-1] = value of KEYS[i+1], ARGV[2i] = its TTL in ms ("0" = none)
-- Returns the versions, in order.
for i = 2, #KEYS do
  local t = redis.call('TYPE', KEYS[i])['ok']
  if t ~= 'hash' and t ~= 'none' then
    return redis.error_reply('WRONGTYPE state key ' .. KEYS[i] .. ' holds a ' .. t .. ', not a hash')
  end
end
local out = {}
for i = 2, #KEYS do
  local v = redis.call('INCR', KEYS[1])
  redis.call('HSET', KEYS[i], 'v', ARGV[2 * i - 3], 'n', v)
  local ttl = tonumber(ARGV[2 * i - 2])
  if ttl > 0 then
    redis.call('PEXPIRE', KEYS[i], ttl)
  else
    redis.call('PERSIST', KEYS[i])
  end
  out[#out + 1] = v
end
return out
