-- Schedules of these jobs due now or within `ahead`, earliest first, at most `limit`.
-- ARGV: prefix, limit, ahead (micros), jobs... Returns {now, [[id, json, version, due]...]}.
local limit = tonumber(ARGV[2])
local now = now_micros()
local horizon = now + tonumber(ARGV[3])
local out = {}
for j = 4, #ARGV do
  local job = ARGV[j]
  local ids = redis.call('ZRANGEBYSCORE', key('due', job), '-inf', int(horizon), 'WITHSCORES',
    'LIMIT', 0, limit)
  for i = 1, #ids, 2 do
    local sid = ids[i]
    local json = redis.call('GET', key('schedule', sid))
    if json then
      out[#out + 1] = { sid, json, redis.call('HGET', key('versions'), sid) or '0', ids[i + 1] }
    else
      redis.call('ZREM', key('due', job), sid)
    end
  end
end
return { int(now), out }
