-- KEYS: ids, entry. ARGV: me, entry id. 1 dropped, 0 not my open intent.
if redis.call('HGET', KEYS[2], 'state') ~= 'intent' then return 0 end
if redis.call('HGET', KEYS[2], 'owner') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[1], ARGV[2])
return 1
