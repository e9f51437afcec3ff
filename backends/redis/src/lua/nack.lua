-- Hands a delivery back: it is redelivered to the group no earlier than the
-- delay (server clock). A strike is counted when it was abandoned (dropped
-- unsettled) rather than nacked. Does nothing if the consumer no longer
-- owns the entry (acked, or taken over after the ack timeout).
-- KEYS[1] = stream, KEYS[2] = delayed set, KEYS[3] = strikes hash
-- ARGV[1] = group, ARGV[2] = entry id, ARGV[3] = delay ms,
-- ARGV[4] = "1" to count a strike, ARGV[5] = consumer
-- Returns 1 when handed back, 0 when not owned.
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #p == 0 or p[1][2] ~= ARGV[5] then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], '~delayed', 0, ARGV[2], 'JUSTID')
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[2])
if ARGV[4] == '1' then redis.call('HINCRBY', KEYS[3], ARGV[2], 1) end
return 1
