-- Takes over live fires whose lease ran out: for the new owner at epoch + 1 (attempt + 1
-- for a fire that had started), or records them lost: asked to stop for a newer fire, an
-- at-most-once fire that had started, or one whose schedule is gone.
-- ARGV: prefix, lease, owner, start_at_once, limit, taken_over template, lost template,
--       removed reason, asked-to-stop template, jobs...
-- Returns {taken: [[fid, sid, nominal, epoch, attempt, state, schedule JSON]...],
--          lost: [[sid, nominal]...]}.
local lease = tonumber(ARGV[2])
local owner = ARGV[3]
local new_state = ARGV[4] == '1' and 'running' or 'claimed'
local limit = tonumber(ARGV[5])
local taken_over, lost_reason, removed, asked = ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local now = now_micros()
local taken, lost = {}, {}
local function mark_lost(fid, sid, job, previous, why)
  redis.call('HSET', key('fire', fid), 'state', 'lost', 'reason', why, 'finished', int(now))
  redis.call('HDEL', key('fire', fid), 'lease', 'claim')
  unhold(fid, sid, job, previous)
  lost[#lost + 1] = { sid, fire_get(fid, 'nominal') }
end
for j = 10, #ARGV do
  local job = ARGV[j]
  local expired = redis.call('ZRANGEBYSCORE', key('held', job), '-inf', int(now - 1), 'LIMIT', 0, limit)
  for _, fid in ipairs(expired) do
    local state = fire_get(fid, 'state')
    local sid = fire_get(fid, 'sid')
    if not state or not HELD[state] or not sid then
      redis.call('ZREM', key('held', job), fid)
    else
      local previous = fire_get(fid, 'owner') or '?'
      local json = fire_get(fid, 'claim') or redis.call('GET', key('schedule', sid))
      local started = state == 'running'
      if not json then
        mark_lost(fid, sid, job, previous, removed)
      elseif fire_get(fid, 'cancel') then
        mark_lost(fid, sid, job, previous, string.format(asked, previous))
      elseif started and cjson.decode(json).at_most_once then
        mark_lost(fid, sid, job, previous, string.format(lost_reason, previous))
      else
        local attempt = tonumber(fire_get(fid, 'attempt') or '1') + (started and 1 or 0)
        local epoch = redis.call('HINCRBY', key('fire', fid), 'epoch', 1)
        local f = key('fire', fid)
        redis.call('HSET', f, 'attempt', int(attempt), 'owner', owner, 'state', new_state,
          'lease', int(now + lease), 'claimed', int(now),
          'reason', string.format(taken_over, previous))
        if new_state == 'running' then
          -- Taken over ahead of its time, it starts then.
          local nominal = tonumber(fire_get(fid, 'nominal') or '0')
          redis.call('HSET', f, 'started', int(math.max(now, nominal)))
        else
          redis.call('HDEL', f, 'started')
        end
        redis.call('SREM', key('owned', previous), fid)
        redis.call('SADD', key('owned', owner), fid)
        redis.call('ZADD', key('held', job), int(now + lease), fid)
        redis.call('SADD', key('live', sid), fid)
        taken[#taken + 1] = { fid, sid, fire_get(fid, 'nominal'), int(epoch), int(attempt), new_state, json }
      end
    end
  end
end
return { taken, lost }
