-- KEYS: workers. ARGV: me, lease (microseconds). Lapsed workers are pruned: absent = lapsed.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', fmt(now))
redis.call('ZADD', KEYS[1], fmt(now + tonumber(ARGV[2])), ARGV[1])
return 1
