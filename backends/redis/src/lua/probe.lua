-- What publishing needs to know about streams: each one's type and
-- whether a consumer group reads it.
-- KEYS = streams
-- Returns {type, group count} per stream ("none", 0 when it does not exist).
local out = {}
for i = 1, #KEYS do
  local t = redis.call('TYPE', KEYS[i])['ok']
  local n = 0
  if t == 'stream' then n = #redis.call('XINFO', 'GROUPS', KEYS[i]) end
  out[i] = {t, n}
end
return out
