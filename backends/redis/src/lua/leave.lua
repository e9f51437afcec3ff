-- A consumer leaves its group: deleted when it holds nothing (otherwise
-- its entries are taken over after the ack timeout and the trim task
-- forgets it later).
-- KEYS[1] = stream; ARGV[1] = group, ARGV[2] = consumer
-- Returns 1 when deleted.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local ok, cs = pcall(redis.call, 'XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if not ok then return 0 end
for _, c in ipairs(cs) do
  local name, pending
  for i = 1, #c, 2 do
    if c[i] == 'name' then name = c[i + 1] elseif c[i] == 'pending' then pending = c[i + 1] end
  end
  if name == ARGV[2] then
    if pending == 0 then
      redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
      return 1
    end
    return 0
  end
end
return 0
