-- ARGV: window, lease, count, token. Returns {1, 0} when granted, else {0, microseconds to wait}.
-- KEYS[3] pause. With every slot in flight no slot can free sooner than one window from now
-- (it must be released and then count a window), so that is the wait: no polling in between.
local paused = tonumber(redis.call('GET', KEYS[3]) or '0')
if paused > now then
  return {0, paused - now}
end
local used = redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[2])
if used < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], fmt(now + lease), ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ttl)
  return {1, 0}
end
local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if #first > 0 then
  return {0, math.max(tonumber(first[2]) + window - now, 1)}
end
return {0, window}
