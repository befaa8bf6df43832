-- Records how a held fire ended, fenced by its holder and epoch; or hands it back.
-- ARGV: prefix, owner, fire id, epoch, final state ('' to hand back), reason ('' for none),
--       error ('' for none), not_started ('1' when it never began here).
-- Returns 1, or 0 when it changed hands.
local owner, fid, epoch = ARGV[2], ARGV[3], ARGV[4]
local final, reason, err, not_started = ARGV[5], ARGV[6], ARGV[7], ARGV[8] == '1'
local now = now_micros()
local state = fire_get(fid, 'state')
if fire_get(fid, 'owner') ~= owner or fire_get(fid, 'epoch') ~= epoch or not state
    or not HELD[state] then
  return 0
end
local f = key('fire', fid)
local sid, job = fire_get(fid, 'sid'), fire_get(fid, 'job')
if final ~= '' then
  redis.call('HSET', f, 'state', final, 'finished', int(now))
  if reason ~= '' then
    redis.call('HSET', f, 'reason', reason)
  end
  if err ~= '' then
    redis.call('HSET', f, 'error', err)
  end
  redis.call('HDEL', f, 'lease', 'claim')
  unhold(fid, sid, job, owner)
else
  -- Handed back: its lease ends now and another instance takes it over.
  redis.call('HSET', f, 'lease', int(now - 1), 'reason', reason)
  redis.call('ZADD', key('held', job), int(now - 1), fid)
  if not_started then
    redis.call('HSET', f, 'state', 'claimed')
    redis.call('HDEL', f, 'started')
  end
  redis.call('PUBLISH', key('changes'), 'fires')
end
return 1
