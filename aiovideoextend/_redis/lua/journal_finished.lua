-- KEYS: entry. ARGV: me, outcome JSON, time. 1 done, 0 not mine.
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', 'finished', 'outcome', ARGV[2], 'updated_at', ARGV[3])
return 1
