-- KEYS: entry. ARGV: me. 1 handed over, 0 not mine or finished.
local state = redis.call('HGET', KEYS[1], 'state')
if not state or state == 'finished' then return 0 end
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'owner', '')
return 1
