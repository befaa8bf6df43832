-- One atomic step of schedule writes and fire records, each schedule conditioned on its
-- version.
-- ARGV: prefix, lease (micros), all_or_none ('1'|'0'), payload (JSON):
--   [{id, expect ("-1": absent, "": any), op ("put"|"delete"|"touch"|"none"),
--     json, job, due (micros or ""), score (micros or "inf"), snapshot (schedule JSON or ""),
--     cancel (bool), removed_reason (text),
--     fires: [{nominal, state, reason, owner, snapshot (bool)}]}]
-- Returns {conflicts: [id...], written: [[sid, nominal, fid]...]} as two arrays.
local lease = tonumber(ARGV[2])
local all_or_none = ARGV[3] == '1'
local items = cjson.decode(ARGV[4])
local now = now_micros()
local conflicts = {}
local function version(id)
  return tonumber(redis.call('HGET', key('versions'), id) or '-1')
end
local ok = {}
for i, item in ipairs(items) do
  local expect = item.expect
  if expect == '' or expect == nil or tonumber(expect) == version(item.id) then
    ok[i] = true
  else
    conflicts[#conflicts + 1] = item.id
  end
end
if all_or_none and #conflicts > 0 then
  return { conflicts, {} }
end
local written = {}
local changed = false
for i, item in ipairs(items) do
  if ok[i] then
    local sid = item.id
    local old_job = redis.call('HGET', key('jobof'), sid)
    if item.op == 'put' then
      redis.call('SET', key('schedule', sid), item.json)
      redis.call('HINCRBY', key('versions'), sid, 1)
      redis.call('HSET', key('jobof'), sid, item.job)
      if item.score == 'inf' then
        redis.call('ZADD', key('schedules'), '+inf', sid)
      else
        redis.call('ZADD', key('schedules'), item.score, sid)
      end
      if old_job then
        redis.call('ZREM', key('due', old_job), sid)
      end
      if item.due ~= '' then
        redis.call('ZADD', key('due', item.job), item.due, sid)
      end
      changed = true
    elseif item.op == 'delete' then
      redis.call('DEL', key('schedule', sid))
      redis.call('HDEL', key('versions'), sid)
      redis.call('HDEL', key('jobof'), sid)
      redis.call('ZREM', key('schedules'), sid)
      if old_job then
        redis.call('ZREM', key('due', old_job), sid)
        redis.call('SREM', key('waiting-schedules', old_job), sid)
      end
      -- Nothing will run the fires waiting for it.
      for _, fid in ipairs(redis.call('ZRANGE', key('waiting', sid), 0, -1)) do
        redis.call('HSET', key('fire', fid), 'state', 'skipped', 'reason', item.removed_reason,
          'finished', int(now))
      end
      redis.call('DEL', key('waiting', sid))
      changed = true
    elseif item.op == 'touch' then
      redis.call('HINCRBY', key('versions'), sid, 1)
    end
    if item.cancel then
      for _, fid in ipairs(redis.call('SMEMBERS', key('live', sid))) do
        if redis.call('HEXISTS', key('fire', fid), 'cancel') == 0 then
          redis.call('HSET', key('fire', fid), 'cancel', int(now))
        end
      end
    end
    local job = item.job
    for _, fire in ipairs(item.fires or {}) do
      local nominal = fire.nominal
      if redis.call('HEXISTS', key('fkey', sid), nominal) == 0 then
        local fid = int(redis.call('INCR', key('seq')))
        local held = HELD[fire.state] == true
        local f = key('fire', fid)
        redis.call('HSET', f, 'sid', sid, 'job', job, 'nominal', nominal, 'state', fire.state,
          'epoch', '1', 'attempt', held and '1' or '0', 'claimed', int(now))
        if fire.reason and fire.reason ~= '' then
          redis.call('HSET', f, 'reason', fire.reason)
        end
        if fire.owner and fire.owner ~= '' then
          redis.call('HSET', f, 'owner', fire.owner)
        end
        if held then
          redis.call('HSET', f, 'lease', int(now + lease))
          redis.call('ZADD', key('held', job), int(now + lease), fid)
          redis.call('SADD', key('owned', fire.owner), fid)
          if fire.snapshot and item.snapshot ~= '' then
            redis.call('HSET', f, 'claim', item.snapshot)
          end
        end
        if COUNTED[fire.state] then
          redis.call('SADD', key('live', sid), fid)
        end
        if fire.state == 'running' then
          -- Claimed ahead, it starts at its time.
          redis.call('HSET', f, 'started', int(math.max(now, tonumber(nominal))))
        elseif fire.state == 'waiting' then
          redis.call('ZADD', key('waiting', sid), nominal, fid)
          redis.call('SADD', key('waiting-schedules', job), sid)
        elseif not held then
          redis.call('HSET', f, 'finished', int(now))
        end
        redis.call('HSET', key('fkey', sid), nominal, fid)
        redis.call('ZADD', key('history', sid), nominal, fid)
        redis.call('SADD', key('histories'), sid)
        written[#written + 1] = { sid, nominal, fid }
      end
    end
  end
end
if changed then
  redis.call('PUBLISH', key('changes'), 'schedules')
end
return { conflicts, written }
