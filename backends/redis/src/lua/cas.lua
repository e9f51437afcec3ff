-- Compare-and-swap of one state key, and of its timer in the same step.
-- KEYS[1] = state key, KEYS[2] = version block counter, KEYS[3] = index,
-- KEYS[4] = timers (sorted set: user key scored by due ms)
-- ARGV[1] = expected version ("" = must be absent), ARGV[2] = value,
-- ARGV[3] = TTL in ms ("0" = none), ARGV[4] = user key (index, timers),
-- ARGV[5] = timer: "" = keep, "-" = clear, else the due time in ms
-- A state key is a string: a 17-byte header (the version in 16 decimal
-- digits, then `e` when it has an expiry, else `-`; see keys.rs) and the
-- value. The swap is one `SET ... GET`, which writes and returns what it
-- replaced: when that was not the expected version, it is put back
-- (`KEEPTTL`: its expiry untouched) and nothing changed. So a write costs
-- one call, not a read and a write. Hashes (`v` = value, `n` = version)
-- are what earlier releases wrote: one is read and replaced by a string.
-- Versions come in blocks of 64 (see keys.rs): a key's next version is
-- the one after its current, until its block runs out; a new key, or one
-- whose block ran out, takes a fresh block (one INCR). A block taken for
-- a write that then conflicts is left unused.
-- Versions are written with string.format: some Redis releases (7.2.0 to
-- 7.2.4) turn a Lua number into "1e+08".
-- Returns {1, new version} or {0, actual version (-1 = absent)}.
local BLOCK = 64
local key, ttl = KEYS[1], tonumber(ARGV[3])

local function fresh_block()
  local v = redis.call('INCR', KEYS[2]) * BLOCK
  -- Lua numbers are doubles: exact integers end at 2^53.
  if v >= 9007199254740992 then
    redis.call('DECR', KEYS[2])
    return nil, redis.error_reply('ERR version space exhausted: counter ' .. KEYS[2] .. ' is past 2^53/' .. BLOCK)
  end
  return v
end

local function next_version(n)
  if n and (n + 1) % BLOCK ~= 0 then return n + 1 end
  return fresh_block()
end

local function bad_version()
  return redis.error_reply('ERR state key ' .. key .. ' holds a version that is not a number (written by something else?)')
end

-- The version in a header, or nil when it is not one of ours.
local function version_of(s)
  local digits, flag = string.sub(s, 1, 16), string.sub(s, 17, 17)
  if #s < 17 or not string.match(digits, '^%d+$') or (flag ~= '-' and flag ~= 'e') then
    return nil
  end
  return tonumber(digits), flag
end

local function stored(v)
  return string.format('%016d', v) .. (ttl > 0 and 'e' or '-') .. ARGV[2]
end

local function timer()
  if ARGV[5] == '-' then
    redis.call('ZREM', KEYS[4], ARGV[4])
  elseif ARGV[5] ~= '' then
    redis.call('ZADD', KEYS[4], ARGV[5], ARGV[4])
  end
end

-- A key that is not a string: a hash of an earlier release, or foreign.
-- `v` = the version to write when it holds the expected one.
local function not_string(v)
  local t = redis.call('TYPE', key)['ok']
  if t ~= 'hash' then
    return redis.error_reply('WRONGTYPE state key ' .. key .. ' holds a ' .. t .. ', not a string')
  end
  local cur = redis.call('HGET', key, 'n')
  local n = tonumber(cur)
  if not n then return bad_version() end
  if ARGV[1] == '' or n ~= tonumber(ARGV[1]) then return {0, n} end
  if ttl > 0 then
    redis.call('SET', key, stored(v), 'PX', ttl)
  else
    redis.call('SET', key, stored(v))
  end
  timer()
  return {1, v}
end

local function wrong_type(reply)
  return type(reply) == 'table' and reply.err and string.sub(reply.err, 1, 9) == 'WRONGTYPE'
end

if ARGV[1] == '' then
  local v, err = fresh_block()
  if not v then return err end
  local old
  if ttl > 0 then
    old = redis.pcall('SET', key, stored(v), 'NX', 'GET', 'PX', ttl)
  else
    old = redis.pcall('SET', key, stored(v), 'NX', 'GET')
  end
  if wrong_type(old) then return not_string(v) end
  if type(old) == 'table' and old.err then return old end
  if old then
    -- Present: nothing was written.
    local n = version_of(old)
    if not n then return bad_version() end
    return {0, n}
  end
  redis.call('ZADD', KEYS[3], 0, ARGV[4])
  timer()
  return {1, v}
end

local want = tonumber(ARGV[1])
local v, err = next_version(want)
if not v then return err end
local old = redis.pcall('SET', key, stored(v), 'XX', 'GET', 'KEEPTTL')
if wrong_type(old) then return not_string(v) end
if type(old) == 'table' and old.err then return old end
if not old then return {0, -1} end
local n, flag = version_of(old)
if n ~= want then
  redis.call('SET', key, old, 'KEEPTTL')
  if not n then return bad_version() end
  return {0, n}
end
if ttl > 0 then
  redis.call('PEXPIRE', key, ttl)
elseif flag == 'e' then
  redis.call('PERSIST', key)
end
timer()
return {1, v}
