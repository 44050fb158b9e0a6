-- Limiter prologue: lapsed leases become ends stamped at their expiry and ends older than one
-- window are forgotten. KEYS[1] inflight, KEYS[2] ends. ARGV[1] window, ARGV[2] lease.
local window = tonumber(ARGV[1])
local lease = tonumber(ARGV[2])
local ttl = math.ceil((lease + window) / 1000) + 1000
local lapsed = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', fmt(now), 'WITHSCORES')
for i = 1, #lapsed, 2 do
  redis.call('ZADD', KEYS[2], lapsed[i + 1], lapsed[i])
end
if #lapsed > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', fmt(now))
  redis.call('PEXPIRE', KEYS[2], ttl)
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', fmt(now - window))
