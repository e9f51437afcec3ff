-- Keeps a delivery in progress: when consumer ARGV[3] still holds entry
-- ARGV[2] of group ARGV[1], its idle time starts again (XCLAIM to itself,
-- JUSTID: the delivery count is unchanged), so no other consumer claims it
-- as timed out while its handler runs.
-- KEYS[1] = stream; ARGV[4] = the delivery count of the caller's delivery
-- Returns 1 when kept, 0 when that delivery is over: settled, or taken
-- over after the ack timeout (by another consumer, or by this one again,
-- which counts a new delivery).
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #p == 0 or p[1][2] ~= ARGV[3] or p[1][4] ~= tonumber(ARGV[4]) then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, ARGV[2], 'JUSTID')
return 1
