-- ARGV: window, lease, token. The end overwrites a lapsed lease's (earlier) expiry stamp.
redis.call('ZREM', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], fmt(now), ARGV[3])
redis.call('PEXPIRE', KEYS[2], ttl)
return 1
