-- Compare-and-swap of one state key.
-- KEYS[1] = state key, KEYS[2] = version counter, KEYS[3] = index
-- ARGV[1] = expected version ("" = must be absent), ARGV[2] = value,
-- ARGV[3] = TTL in ms ("0" = none), ARGV[4] = user key (for the index)
-- Returns {1, new version} or {0, actual version (-1 = absent)}.
local cur = redis.call('HGET', KEYS[1], 'n')
if ARGV[1] == '' then
  if cur then return {0, tonumber(cur)} end
else
  if not cur then return {0, -1} end
  if cur ~= ARGV[1] then return {0, tonumber(cur)} end
end
local v = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'n', v)
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
elseif cur then
  redis.call('PERSIST', KEYS[1])
end
if not cur then redis.call('ZADD', KEYS[3], 0, ARGV[4]) end
return {1, v}
