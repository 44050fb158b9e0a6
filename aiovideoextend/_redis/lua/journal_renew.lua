-- KEYS: workers. ARGV: me, lease. 0: the lease had lapsed (others may have adopted entries).
if not alive(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], fmt(now + tonumber(ARGV[2])), ARGV[1])
return 1
