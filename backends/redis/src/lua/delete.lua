-- Deletes one state key and its index entry.
-- KEYS[1] = state key, KEYS[2] = index; ARGV[1] = user key
-- Returns 1 when the key existed.
redis.call('ZREM', KEYS[2], ARGV[1])
return redis.call('DEL', KEYS[1])
