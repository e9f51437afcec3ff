-- Deletes one state key, its index entry and its timer.
-- KEYS[1] = state key, KEYS[2] = index, KEYS[3] = timers; ARGV[1] = user key
-- Returns 1 when the key existed.
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return redis.call('DEL', KEYS[1])
