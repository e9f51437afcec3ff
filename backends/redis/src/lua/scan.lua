-- One page of a prefix scan: SCAN rounds until something matches, the scan
-- ends, or 16 rounds have passed; then the value and version of each key.
-- ARGV[1] = cursor, ARGV[2] = MATCH pattern, ARGV[3] = COUNT hint
-- Returns {next cursor, {key, value, version}...}; keys that vanished or
-- hold another type are left out ({key, false, false} for the latter).
local cursor = ARGV[1]
local keys = {}
for _ = 1, 16 do
  local r = redis.call('SCAN', cursor, 'MATCH', ARGV[2], 'COUNT', ARGV[3])
  cursor = r[1]
  for _, k in ipairs(r[2]) do keys[#keys + 1] = k end
  if #keys > 0 or cursor == '0' then break end
end
local out = {cursor}
for _, k in ipairs(keys) do
  local t = redis.call('TYPE', k)['ok']
  if t == 'hash' then
    local r = redis.call('HMGET', k, 'v', 'n')
    out[#out + 1] = {k, r[1], r[2]}
  elseif t ~= 'none' then
    out[#out + 1] = {k, t}
  end
end
return out
