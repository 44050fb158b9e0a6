-- KEYS[1] inflight. ARGV: lease, tokens... Returns how many of the tokens still had a lease.
local expiry = fmt(now + tonumber(ARGV[1]))
local renewed = 0
for i = 2, #ARGV do
  renewed = renewed + redis.call('ZADD', KEYS[1], 'XX', 'CH', expiry, ARGV[i])
end
return renewed
