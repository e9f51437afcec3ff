-- Settles a claimed timer if nobody changed it since the claim.
-- KEYS[1] = timers; ARGV[1] = user key, ARGV[2] = claim (see
-- timers_claim.lua), ARGV[3] = "" to remove it, else its new due time (ms)
-- Returns 1 when settled, 0 when it had changed (or is gone).
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not s or tonumber(s) ~= tonumber(ARGV[2]) + 0.5 then return 0 end
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
end
return 1
