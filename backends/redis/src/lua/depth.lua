-- How many entries of group ARGV[1] wait, are held, and are delayed: one
-- consistent snapshot, times by the server's clock (as nack.lua's).
-- KEYS[1] = stream, KEYS[2] = delayed set
-- ARGV[1] = group
-- Returns {lag, pending, held by ~delayed, of those not yet due}, or nil
-- when the stream or the group does not exist.
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local g = nil
for _, info in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local f = {}
  for i = 1, #info, 2 do f[info[i]] = info[i + 1] end
  if f['name'] == ARGV[1] then
    g = f
    break
  end
end
if g == nil then return false end

-- Entries after the group's last delivered one. Once the group has read,
-- the server's figure still counts entries trimmed unread (MAXLEN): XLEN
-- bounds it. It is unknown (nil) after an XDEL past the group's position or
-- for a group set to an arbitrary id: then they are counted, a page at a
-- time (the script then takes time in proportion to the lag).
local length = redis.call('XLEN', KEYS[1])
local lag = g['lag']
if lag then
  lag = math.min(lag, length)
else
  lag = 0
  local from = '(' .. g['last-delivered-id']
  while true do
    local page = redis.call('XRANGE', KEYS[1], from, '+', 'COUNT', 1000)
    lag = lag + #page
    if #page < 1000 then break end
    from = '(' .. page[#page][1]
  end
end

local pending, held, waiting = g['pending'], 0, 0
if pending > 0 then
  for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
    local name, n
    for i = 1, #c, 2 do
      if c[i] == 'name' then name = c[i + 1] elseif c[i] == 'pending' then n = c[i + 1] end
    end
    if name == '~delayed' then
      held = n
      break
    end
  end
end
if held > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  -- The set can keep an id whose entry was settled meanwhile: bound by held.
  waiting = math.min(redis.call('ZCOUNT', KEYS[2], '(' .. now, '+inf'), held)
end
return {lag, pending, held, waiting}
