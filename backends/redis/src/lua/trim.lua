-- Trims a stream below what every group still needs (its oldest pending
-- entry, or its last delivered one), and forgets consumers that have held
-- nothing for ARGV[1] ms. A stream without groups is left alone (XADD caps it).
-- KEYS[1] = stream
-- Returns the number of entries trimmed.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
if #groups == 0 then return 0 end

local function before(a, b)
  local am, as = string.match(a, '(%d+)-(%d+)')
  local bm, bs = string.match(b, '(%d+)-(%d+)')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end

local min = nil
for _, g in ipairs(groups) do
  local name, pending, last
  for i = 1, #g, 2 do
    if g[i] == 'name' then name = g[i + 1]
    elseif g[i] == 'pending' then pending = g[i + 1]
    elseif g[i] == 'last-delivered-id' then last = g[i + 1] end
  end
  local keep = last
  if pending > 0 then keep = redis.call('XPENDING', KEYS[1], name)[2] end
  if min == nil or before(keep, min) then min = keep end
  for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], name)) do
    local cname, cpending, cidle
    for i = 1, #c, 2 do
      if c[i] == 'name' then cname = c[i + 1]
      elseif c[i] == 'pending' then cpending = c[i + 1]
      elseif c[i] == 'idle' then cidle = c[i + 1] end
    end
    if cname ~= '~delayed' and cpending == 0 and cidle > tonumber(ARGV[1]) then
      redis.call('XGROUP', 'DELCONSUMER', KEYS[1], name, cname)
    end
  end
end
return redis.call('XTRIM', KEYS[1], 'MINID', '~', min)
