-- Moves a timer from ARGV[2] to ARGV[3] (ms) only if it is still due at
-- exactly ARGV[2] (not changed, claimed or removed since).
-- KEYS[1] = timers; ARGV[1] = user key
-- Returns 1 when moved.
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not s or tonumber(s) ~= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
