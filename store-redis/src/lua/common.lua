-- Shared by every script (prepended to each): key names under the prefix, the server's
-- clock in microseconds, and exact integers (Lua 5.1's tostring writes 1.7e+15).
local P = ARGV[1]
local function key(kind, name)
  if name then
    return P .. ':' .. kind .. ':' .. name
  end
  return P .. ':' .. kind
end
local function int(n)
  return string.format('%.0f', n)
end
local function now_micros()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local HELD = { claimed = true, queued = true, running = true }
local COUNTED = { claimed = true, running = true }
local function fire_get(fid, field)
  local v = redis.call('HGET', key('fire', fid), field)
  if v == false then
    return nil
  end
  return v
end
-- Live fires of a schedule: claimed or running with a lease not run out. The set is cleaned of
-- fires that left those states.
local function live_count(sid, now)
  local n = 0
  for _, fid in ipairs(redis.call('SMEMBERS', key('live', sid))) do
    local state = fire_get(fid, 'state')
    if state and COUNTED[state] then
      local lease = tonumber(fire_get(fid, 'lease') or '0')
      if lease > now then
        n = n + 1
      end
    else
      redis.call('SREM', key('live', sid), fid)
    end
  end
  return n
end
-- A fire leaves every index of held fires.
local function unhold(fid, sid, job, owner)
  redis.call('ZREM', key('held', job), fid)
  redis.call('SREM', key('live', sid), fid)
  if owner then
    redis.call('SREM', key('owned', owner), fid)
  end
end
