-- Claims waiting fires, oldest first, of schedules that have room (fewer live fires than
-- their max_instances), each as a run of its own; the schedule's version is raised, so a
-- claim that read it before this one is refused.
-- ARGV: prefix, lease, owner, start_at_once ('1'|'0'), limit, jobs...
-- Returns [[sid, fid, nominal, state, schedule JSON]...].
local lease = tonumber(ARGV[2])
local owner = ARGV[3]
local state = ARGV[4] == '1' and 'running' or 'claimed'
local limit = tonumber(ARGV[5])
local now = now_micros()
local out = {}
for j = 6, #ARGV do
  local job = ARGV[j]
  for _, sid in ipairs(redis.call('SMEMBERS', key('waiting-schedules', job))) do
    if #out >= limit then
      return out
    end
    local json = redis.call('GET', key('schedule', sid))
    if redis.call('ZCARD', key('waiting', sid)) == 0 or not json then
      redis.call('SREM', key('waiting-schedules', job), sid)
    else
      local schedule = cjson.decode(json)
      if not schedule.paused then
        local room = (schedule.max_instances or 1) - live_count(sid, now)
        if room > 0 then
          local fids = redis.call('ZRANGE', key('waiting', sid), 0, room - 1)
          for _, fid in ipairs(fids) do
            local f = key('fire', fid)
            redis.call('HSET', f, 'state', state, 'owner', owner, 'attempt', '1',
              'lease', int(now + lease), 'claimed', int(now))
            redis.call('HDEL', f, 'reason')
            if state == 'running' then
              redis.call('HSET', f, 'started', int(now))
            end
            redis.call('ZREM', key('waiting', sid), fid)
            redis.call('ZADD', key('held', job), int(now + lease), fid)
            redis.call('SADD', key('owned', owner), fid)
            redis.call('SADD', key('live', sid), fid)
            out[#out + 1] = { sid, fid, fire_get(fid, 'nominal'), state, json }
          end
          if #fids > 0 then
            redis.call('HINCRBY', key('versions'), sid, 1)
          end
        end
      end
    end
  end
end
return out
