-- The server's clock, and when an instance running these jobs next has something to do:
-- the earliest due time, the earliest lease to run out (plus one microsecond), or now when a
-- waiting fire's schedule has room.
-- ARGV: prefix, jobs... Returns {now, next or ''}.
local now = now_micros()
local next = nil
local function earlier(t)
  if t and (next == nil or t < next) then
    next = t
  end
end
for j = 2, #ARGV do
  local job = ARGV[j]
  local due = redis.call('ZRANGE', key('due', job), 0, 0, 'WITHSCORES')
  if #due > 0 then
    earlier(tonumber(due[2]))
  end
  local lease = redis.call('ZRANGE', key('held', job), 0, 0, 'WITHSCORES')
  if #lease > 0 then
    earlier(tonumber(lease[2]) + 1)
  end
  for _, sid in ipairs(redis.call('SMEMBERS', key('waiting-schedules', job))) do
    local json = redis.call('GET', key('schedule', sid))
    if json and redis.call('ZCARD', key('waiting', sid)) > 0 then
      local schedule = cjson.decode(json)
      if not schedule.paused and live_count(sid, now) < (schedule.max_instances or 1) then
        earlier(now)
      end
    end
  end
end
if next == nil then
  return { int(now), '' }
end
return { int(now), int(next) }
