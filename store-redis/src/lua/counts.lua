-- ARGV: prefix, schedule ids... -> for each: {live, waiting}.
local now = now_micros()
local out = {}
for i = 2, #ARGV do
  local sid = ARGV[i]
  out[#out + 1] = { live_count(sid, now), redis.call('ZCARD', key('waiting', sid)) }
end
return out
