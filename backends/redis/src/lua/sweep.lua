-- Removes index entries whose state key has expired, walking the index a
-- slice at a time (the caller keeps the position between calls).
-- KEYS[1] = index; ARGV[1] = min ("-" or "(last member"), ARGV[2] = slice
-- size, ARGV[3] = state key prefix
-- Returns {next position (false at the end), removed count}.
local members = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], '+', 'LIMIT', 0, tonumber(ARGV[2]))
local removed = 0
for _, m in ipairs(members) do
  if redis.call('EXISTS', ARGV[3] .. m) == 0 then
    redis.call('ZREM', KEYS[1], m)
    removed = removed + 1
  end
end
local last = false
if #members == tonumber(ARGV[2]) then last = members[#members] end
return {last, removed}
