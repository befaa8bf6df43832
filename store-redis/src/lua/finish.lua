-- Records how held fires ended, each fenced by its holder and epoch; or hands them back.
-- ARGV: prefix, owner, then per fire: fire id, epoch, final state ('' to hand back), reason
--       ('' for none), error ('' for none), not_started ('1' when it never began here).
-- Returns one number per fire: 1, or 0 when it changed hands (or ended otherwise before).
local owner = ARGV[2]
local now = now_micros()
local out = {}
local handed_back = false
for i = 3, #ARGV, 6 do
  local fid, epoch = ARGV[i], ARGV[i + 1]
  local final, reason, err = ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local not_started = ARGV[i + 5] == '1'
  local state = fire_get(fid, 'state')
  local mine = state and fire_get(fid, 'owner') == owner and fire_get(fid, 'epoch') == epoch
  if not mine then
    out[#out + 1] = 0
  elseif not HELD[state] then
    -- Ended already: the same end again is a retry, another end is refused.
    out[#out + 1] = (final ~= '' and state == final) and 1 or 0
  else
    local f = key('fire', fid)
    local sid, job = fire_get(fid, 'sid'), fire_get(fid, 'job')
    if final ~= '' then
      redis.call('HSET', f, 'state', final, 'finished', int(now))
      if reason ~= '' then
        redis.call('HSET', f, 'reason', reason)
      end
      if err ~= '' then
        redis.call('HSET', f, 'error', err)
      end
      redis.call('HDEL', f, 'lease', 'claim')
      unhold(fid, sid, job, owner)
    else
      -- Handed back: its lease ends now and another instance takes it over.
      redis.call('HSET', f, 'lease', int(now - 1), 'reason', reason)
      redis.call('ZADD', key('held', job), int(now - 1), fid)
      if not_started then
        redis.call('HSET', f, 'state', 'claimed')
        redis.call('HDEL', f, 'started')
      end
      handed_back = true
    end
    out[#out + 1] = 1
  end
end
if handed_back then
  redis.call('PUBLISH', key('changes'), 'fires')
end
return out
