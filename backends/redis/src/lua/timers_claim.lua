-- Claims up to ARGV[2] timers due at ARGV[1] (ms), earliest first: each is
-- moved to ARGV[1] + ARGV[3] (the lease) + 0.5, so it fires again unless
-- settled. State writes set whole milliseconds, so the half marks a claim:
-- a timer still at exactly its claim score was changed by nobody since.
-- KEYS[1] = timers (sorted set: user key scored by due ms)
-- Returns {claim, key, due, key, due, ...} (claim = the lease's end, ms).
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[2])
local again = tonumber(ARGV[1]) + tonumber(ARGV[3])
local out = {again}
for i = 1, #due, 2 do
  redis.call('ZADD', KEYS[1], again + 0.5, due[i])
  out[#out + 1] = due[i]
  out[#out + 1] = due[i + 1]
end
return out
