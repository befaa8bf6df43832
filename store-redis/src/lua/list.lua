-- Every schedule, by next run time (paused ones, with an infinite score, last; ties by id).
-- ARGV: prefix. Returns [json...].
local out = {}
for _, sid in ipairs(redis.call('ZRANGE', key('schedules'), 0, -1)) do
  local json = redis.call('GET', key('schedule', sid))
  if json then
    out[#out + 1] = json
  end
end
return out
