-- Schedules with their version and due time.
-- ARGV: prefix, ids... Returns [[id, json, version, due or '']...] (absent ids left out).
local out = {}
for i = 2, #ARGV do
  local sid = ARGV[i]
  local json = redis.call('GET', key('schedule', sid))
  if json then
    local job = redis.call('HGET', key('jobof'), sid)
    local due = job and redis.call('ZSCORE', key('due', job), sid)
    out[#out + 1] = { sid, json, redis.call('HGET', key('versions'), sid) or '0', due or '' }
  end
end
return out
