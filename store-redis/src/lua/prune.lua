-- Deletes history past the newest `keep` fires of each schedule and older than `oldest`,
-- never a fire that is still to run or running.
-- ARGV: prefix, keep, oldest (micros). Returns how many.
local keep = tonumber(ARGV[2])
local oldest = tonumber(ARGV[3])
local UNFINISHED = { claimed = true, queued = true, running = true, waiting = true }
local n = 0
for _, sid in ipairs(redis.call('SMEMBERS', key('histories'))) do
  local fids = redis.call('ZREVRANGE', key('history', sid), 0, -1, 'WITHSCORES')
  local rank = 0
  for i = 1, #fids, 2 do
    local fid, nominal = fids[i], tonumber(fids[i + 1])
    rank = rank + 1
    local state = fire_get(fid, 'state')
    if not (state and UNFINISHED[state]) and (rank > keep or nominal < oldest) then
      redis.call('DEL', key('fire', fid))
      redis.call('ZREM', key('history', sid), fid)
      redis.call('HDEL', key('fkey', sid), fids[i + 1])
      n = n + 1
    end
  end
  if redis.call('ZCARD', key('history', sid)) == 0 then
    redis.call('SREM', key('histories'), sid)
    redis.call('DEL', key('fkey', sid))
  end
end
return n
