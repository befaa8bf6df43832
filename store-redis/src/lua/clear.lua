-- Removes every schedule: their keys, indexes and waiting fires (recorded skipped).
-- ARGV: prefix, removed reason. Returns how many.
local now = now_micros()
local ids = redis.call('ZRANGE', key('schedules'), 0, -1)
for _, sid in ipairs(ids) do
  local job = redis.call('HGET', key('jobof'), sid)
  redis.call('DEL', key('schedule', sid))
  if job then
    redis.call('ZREM', key('due', job), sid)
    redis.call('SREM', key('waiting-schedules', job), sid)
  end
  for _, fid in ipairs(redis.call('ZRANGE', key('waiting', sid), 0, -1)) do
    redis.call('HSET', key('fire', fid), 'state', 'skipped', 'reason', ARGV[2],
      'finished', int(now))
  end
  redis.call('DEL', key('waiting', sid))
end
redis.call('DEL', key('schedules'), key('versions'), key('jobof'))
redis.call('PUBLISH', key('changes'), 'schedules')
return #ids
