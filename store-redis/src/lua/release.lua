-- Gives back an owner's claimed and queued fires that have not started: their leases end
-- now, so another instance takes them at once.
-- ARGV: prefix, owner, reason. Returns how many.
local owner, reason = ARGV[2], ARGV[3]
local now = now_micros()
local n = 0
for _, fid in ipairs(redis.call('SMEMBERS', key('owned', owner))) do
  local state = fire_get(fid, 'state')
  if (state == 'claimed' or state == 'queued') and fire_get(fid, 'owner') == owner then
    redis.call('HSET', key('fire', fid), 'lease', int(now - 1), 'reason', reason)
    redis.call('ZADD', key('held', fire_get(fid, 'job')), int(now - 1), fid)
    n = n + 1
  elseif not state or not HELD[state] then
    redis.call('SREM', key('owned', owner), fid)
  end
end
if n > 0 then
  redis.call('PUBLISH', key('changes'), 'fires')
end
return n
