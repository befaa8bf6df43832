-- Marks a claimed or queued fire running, fenced by its holder and epoch.
-- ARGV: prefix, lease, owner, fire id, epoch. Returns 1, or 0 when it changed hands.
local lease = tonumber(ARGV[2])
local fid = ARGV[4]
local now = now_micros()
local state = fire_get(fid, 'state')
if fire_get(fid, 'owner') ~= ARGV[3] or fire_get(fid, 'epoch') ~= ARGV[5]
    or (state ~= 'claimed' and state ~= 'queued') then
  return 0
end
redis.call('HSET', key('fire', fid), 'state', 'running', 'started', int(now),
  'lease', int(now + lease))
redis.call('ZADD', key('held', fire_get(fid, 'job')), int(now + lease), fid)
redis.call('SADD', key('live', fire_get(fid, 'sid')), fid)
return 1
