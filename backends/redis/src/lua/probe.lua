-- What publishing needs to know about topics: each stream's type, whether
-- a consumer group reads it, and whether anyone listens on its channel.
-- KEYS = streams; ARGV = their channels, in the same order
-- Returns {type, group count, listeners} per topic ("none", 0 when the
-- stream does not exist).
local out = {}
for i = 1, #KEYS do
  local t = redis.call('TYPE', KEYS[i])['ok']
  local n = 0
  if t == 'stream' then n = #redis.call('XINFO', 'GROUPS', KEYS[i]) end
  out[i] = {t, n, redis.call('PUBSUB', 'NUMSUB', ARGV[i])[2]}
end
return out
