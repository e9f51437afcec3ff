-- Compare-and-swap of one state key, and of its timer in the same step.
-- KEYS[1] = state key, KEYS[2] = version block counter, KEYS[3] = index,
-- KEYS[4] = timers (sorted set: user key scored by due ms)
-- ARGV[1] = expected version ("" = must be absent), ARGV[2] = value,
-- ARGV[3] = TTL in ms ("0" = none), ARGV[4] = user key (index, timers),
-- ARGV[5] = timer: "" = keep, "-" = clear, else the due time in ms
-- Field `x` marks a key with an expiry, so a write without one clears it
-- (PERSIST) only when there is one.
-- Versions come in blocks of 64 (see keys.rs): a key's next version is
-- the one after its current, until its block runs out; a new key, or one
-- whose block ran out, takes a fresh block (one INCR).
-- Versions are written as integers with string.format: some Redis
-- releases (7.2.0 to 7.2.4) turn a Lua number into "1e+08".
-- Returns {1, new version} or {0, actual version (-1 = absent)}.
local BLOCK = 64
local cur = redis.call('HMGET', KEYS[1], 'n', 'x')
local n, expiring = tonumber(cur[1]), cur[2]
if cur[1] and not n then
  return redis.error_reply('ERR state key ' .. KEYS[1] .. ' holds a version that is not a number (written by something else?)')
end
if ARGV[1] == '' then
  if n then return {0, n} end
else
  if not n then return {0, -1} end
  if n ~= tonumber(ARGV[1]) then return {0, n} end
end
local v = n and (n + 1)
if not v or v % BLOCK == 0 then
  v = redis.call('INCR', KEYS[2]) * BLOCK
  -- Lua numbers are doubles: exact integers end at 2^53.
  if v >= 9007199254740992 then
    redis.call('DECR', KEYS[2])
    return redis.error_reply('ERR version space exhausted: counter ' .. KEYS[2] .. ' is past 2^53/' .. BLOCK)
  end
end
local sv = string.format('%d', v)
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('HSET', KEYS[1], 'v', ARGV[2], 'n', sv, 'x', '1')
  redis.call('PEXPIRE', KEYS[1], ttl)
else
  redis.call('HSET', KEYS[1], 'v', ARGV[2], 'n', sv)
  if expiring then
    redis.call('PERSIST', KEYS[1])
    redis.call('HDEL', KEYS[1], 'x')
  end
end
if not n then redis.call('ZADD', KEYS[3], 0, ARGV[4]) end
if ARGV[5] == '-' then
  redis.call('ZREM', KEYS[4], ARGV[4])
elseif ARGV[5] ~= '' then
  redis.call('ZADD', KEYS[4], ARGV[5], ARGV[4])
end
return {1, v}
