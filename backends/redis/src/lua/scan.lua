-- One page of a prefix scan, in key order, from the index (a sorted set of
-- user keys, all of score 0, so ordered by bytes). Index entries whose key
-- has expired are removed on the way.
-- KEYS[1] = index; ARGV[1] = min ("[prefix" or "(last key"),
-- ARGV[2] = max ("(prefix\255" or "+"), ARGV[3] = limit,
-- ARGV[4] = state key prefix ("<prefix>:k:")
-- Returns {last key examined or false, entry...}, each entry one of
-- {key, 's', stored string (header and value, see cas.lua)},
-- {key, 'h', value, version} (a hash of an earlier release) or
-- {key, 't', type} (a key that holds another type).
local members = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {false}
for _, m in ipairs(members) do
  out[1] = m
  local k = ARGV[4] .. m
  local t = redis.call('TYPE', k)['ok']
  if t == 'string' then
    out[#out + 1] = {m, 's', redis.call('GET', k)}
  elseif t == 'hash' then
    local r = redis.call('HMGET', k, 'v', 'n')
    out[#out + 1] = {m, 'h', r[1], r[2]}
  elseif t == 'none' then
    redis.call('ZREM', KEYS[1], m)
  else
    out[#out + 1] = {m, 't', t}
  end
end
if #members < tonumber(ARGV[3]) then out[1] = false end
return out
