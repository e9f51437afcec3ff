-- Writes one or more state keys, each with a fresh version, atomically:
-- either every key is written or (a key holds another type) none is. New
-- keys join the index (a sorted set ordered by key, for scans). Each key
-- takes a fresh version block (see cas.lua and keys.rs): its version is
-- greater than any it had before, whatever it held. A key is written as a
-- string (header and value, see cas.lua), also over a hash of an earlier
-- release.
-- KEYS[1] = version block counter, KEYS[2] = index, KEYS[3..] = state keys
-- ARGV[3i-2] = user key of KEYS[i+2], ARGV[3i-1] = its value,
-- ARGV[3i] = its TTL in ms ("0" = none)
-- Returns the versions, in order.
local types = {}
for i = 3, #KEYS do
  local t = redis.call('TYPE', KEYS[i])['ok']
  if t ~= 'string' and t ~= 'hash' and t ~= 'none' then
    return redis.error_reply('WRONGTYPE state key ' .. KEYS[i] .. ' holds a ' .. t .. ', not a string')
  end
  types[i] = t
end
-- One INCRBY takes a block per key, checked before anything is written.
local BLOCK = 64
local last = redis.call('INCRBY', KEYS[1], #KEYS - 2)
-- Lua numbers are doubles: exact integers end at 2^53.
if last * BLOCK >= 9007199254740992 then
  redis.call('DECRBY', KEYS[1], #KEYS - 2)
  return redis.error_reply('ERR version space exhausted: counter ' .. KEYS[1] .. ' is past 2^53/' .. BLOCK)
end
local out = {}
for i = 3, #KEYS do
  local j = 3 * (i - 2)
  local v = (last - #KEYS + i) * BLOCK
  local ttl = tonumber(ARGV[j])
  -- The header of cas.lua; a SET without PX clears an expiry.
  if ttl > 0 then
    redis.call('SET', KEYS[i], string.format('%016d', v) .. 'e' .. ARGV[j - 1], 'PX', ARGV[j])
  else
    redis.call('SET', KEYS[i], string.format('%016d', v) .. '-' .. ARGV[j - 1])
  end
  if types[i] == 'none' then redis.call('ZADD', KEYS[2], 0, ARGV[j - 2]) end
  out[#out + 1] = v
end
return out
