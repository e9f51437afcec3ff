-- Compare-and-swap of one state key, and of its timer in the same step.
-- KEYS[1] = state key, KEYS[2] = version block counter, KEYS[3] = index,
-- KEYS[4] = timers (sorted set: user key scored by due ms)
-- ARGV[1] = expected version ("" = must be absent), ARGV[2] = the string
-- to store: the header of version ARGV[1] + 1 (any 16 digits when absent
-- is expected) and the value (`stored::encode`), ARGV[3] = TTL in ms ("0" = none),
-- ARGV[4] = user key (index, timers),
-- ARGV[5] = timer: "" = keep, "-" = clear, else the due time in ms
-- A state key is a string: a 17-byte header (the version in 16 decimal
-- digits, then `e` when it has an expiry, else `-`; see stored.rs) and the
-- value. The swap of a small value is one `SET ... GET`, which writes and
-- returns what it replaced: when that was not the expected version, it is
-- put back (`KEEPTTL`: its expiry untouched) and nothing changed. So such
-- a write costs one call, not a read and a write; a large one still reads
-- the header first (SWAP_MAX). The caller builds the string, header
-- included: a Lua concatenation of a whole value costs the server more
-- than the call it saves (measured), so the script rebuilds it only when
-- the version is another (a new key, a fresh block). The stored header is
-- checked as little as the swap needs (its version and mark); `stored.rs`
-- reads it strictly. Hashes (`v` = value,
-- `n` = version) are what earlier releases wrote: one is read and
-- replaced by a string.
-- Versions come in blocks of 64 (see keys.rs): a key's next version is
-- the one after its current, until its block runs out; a new key, or one
-- whose block ran out, takes a fresh block (one INCR). A block taken for
-- a write that then conflicts is left unused.
-- Versions are written with string.format, and the TTL passed on as the
-- string it came as: some Redis releases (7.2.0 to 7.2.4) turn a Lua
-- number into "1e+08".
-- Returns {1, new version} or {0, actual version (-1 = absent)}.
local BLOCK = 64
-- Above this many bytes, a swap reads the header first instead (a
-- GETRANGE, then a SET), and a new key's header is set in place after its
-- write (SETRANGE): `SET ... GET` copies the whole old value into Lua, and
-- a concatenation the whole new one, which costs more than a call once
-- values pass ~1 KiB (measured).
local SWAP_MAX = 1024
local key, ttl = KEYS[1], tonumber(ARGV[3])
local want = tonumber(ARGV[1])
local NOT_A_NUMBER = ' holds a version that is not a number (written by something else?)'

-- The version to write.
local v
if want and (want + 1) % BLOCK ~= 0 then
  v = want + 1
else
  v = redis.call('INCR', KEYS[2]) * BLOCK
  -- Lua numbers are doubles: exact integers end at 2^53.
  if v >= 9007199254740992 then
    redis.call('DECR', KEYS[2])
    return redis.error_reply('ERR version space exhausted: counter ' .. KEYS[2] .. ' is past 2^53/' .. BLOCK)
  end
end
-- ARGV[2], its header rebuilt (a copy) when the version is not the one
-- after the expected; a large new key's is set in place after its write.
local new = ARGV[2]
local large = #new > SWAP_MAX
if (want and v ~= want + 1) or (not want and not large) then
  new = string.format('%016d', v) .. string.sub(new, 17)
end

-- The common case first, written out (no closures: they cost each call).
local old
if want and not large then
  old = redis.pcall('SET', key, new, 'XX', 'GET', 'KEEPTTL')
  if type(old) ~= 'table' then
    if not old then return {0, -1} end
    -- The header: 16 digits, then `e` (it expires) or `-`.
    local first, mark = string.byte(old, 1), string.byte(old, 17)
    local n = (mark == 45 or mark == 101) and first and first >= 48 and first <= 57
      and tonumber(string.sub(old, 1, 16))
    if n and n <= 0 then n = nil end
    if n ~= want then
      redis.call('SET', key, old, 'KEEPTTL')
      if not n then return redis.error_reply('ERR state key ' .. key .. NOT_A_NUMBER) end
      return {0, n}
    end
    if ttl > 0 then
      redis.call('PEXPIRE', key, ARGV[3])
    elseif mark == 101 then
      redis.call('PERSIST', key)
    end
    if ARGV[5] == '-' then
      redis.call('ZREM', KEYS[4], ARGV[4])
    elseif ARGV[5] ~= '' then
      redis.call('ZADD', KEYS[4], ARGV[5], ARGV[4])
    end
    return {1, v}
  end
end

local function timer()
  if ARGV[5] == '-' then
    redis.call('ZREM', KEYS[4], ARGV[4])
  elseif ARGV[5] ~= '' then
    redis.call('ZADD', KEYS[4], ARGV[5], ARGV[4])
  end
end

-- Writes `new` over what the key holds (any type), with the expiry asked
-- for, and the timer.
local function replace()
  if ttl > 0 then
    redis.call('SET', key, new, 'PX', ARGV[3])
  else
    redis.call('SET', key, new)
  end
  timer()
  return {1, v}
end

-- The version in a stored string (nil when it is not one of ours). The
-- check is as light as the swap needs (a digit first, a mark, a positive
-- number); `stored.rs` reads headers strictly.
local function version_of(s)
  local first, mark = string.byte(s, 1), string.byte(s, 17)
  if (mark ~= 45 and mark ~= 101) or not first or first < 48 or first > 57 then return nil end
  local n = tonumber(string.sub(s, 1, 16))
  if n and n > 0 then return n end
  return nil
end

if want and large then
  -- Large: read the header, then write.
  old = redis.pcall('GETRANGE', key, 0, 16)
  if type(old) ~= 'table' then
    if old == '' then return {0, -1} end
    local n = version_of(old)
    if n ~= want then
      if not n then return redis.error_reply('ERR state key ' .. key .. NOT_A_NUMBER) end
      return {0, n}
    end
    return replace()
  end
elseif not want then
  if ttl > 0 then
    old = redis.pcall('SET', key, new, 'NX', 'GET', 'PX', ARGV[3])
  else
    old = redis.pcall('SET', key, new, 'NX', 'GET')
  end
  if type(old) ~= 'table' then
    if old then
      -- Present: nothing was written.
      local n = version_of(old)
      if not n then return redis.error_reply('ERR state key ' .. key .. NOT_A_NUMBER) end
      return {0, n}
    end
    if large then redis.call('SETRANGE', key, 0, string.format('%016d', v)) end
    redis.call('ZADD', KEYS[3], 0, ARGV[4])
    timer()
    return {1, v}
  end
end
if not string.find(old.err, '^WRONGTYPE') then return old end

-- Not a string: a hash of an earlier release, or foreign.
local t = redis.call('TYPE', key)['ok']
if t ~= 'hash' then
  return redis.error_reply('WRONGTYPE state key ' .. key .. ' holds a ' .. t .. ', not a string')
end
local n = tonumber(redis.call('HGET', key, 'n'))
if not n then return redis.error_reply('ERR state key ' .. key .. NOT_A_NUMBER) end
if n ~= want then return {0, n} end
return replace()
