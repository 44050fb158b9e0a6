-- KEYS[1] inflight. ARGV: token. A slot never sent frees at once; one that already lapsed
-- keeps its end.
return redis.call('ZREM', KEYS[1], ARGV[1])
