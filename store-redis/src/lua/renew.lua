-- Renews the leases of an owner's held fires; returns those a newer fire asked to stop, as
-- [[fid, epoch]...].
-- ARGV: prefix, lease, owner, fire ids...
local lease = tonumber(ARGV[2])
local owner = ARGV[3]
local now = now_micros()
local asked = {}
for i = 4, #ARGV do
  local fid = ARGV[i]
  local state = fire_get(fid, 'state')
  if state and HELD[state] and fire_get(fid, 'owner') == owner then
    redis.call('HSET', key('fire', fid), 'lease', int(now + lease))
    redis.call('ZADD', key('held', fire_get(fid, 'job')), int(now + lease), fid)
    if fire_get(fid, 'cancel') then
      asked[#asked + 1] = { fid, fire_get(fid, 'epoch') }
    end
  end
end
return asked
