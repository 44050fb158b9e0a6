-- KEYS[1] pause. ARGV: seconds (microseconds). Only ever extends a pause.
local till = now + tonumber(ARGV[1])
if till > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], fmt(till), 'PX', math.ceil(ARGV[1] / 1000) + 1000)
end
return 1
