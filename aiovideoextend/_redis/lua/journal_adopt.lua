-- KEYS: workers, entry. ARGV: me. Returns {1, fields} adopted, {0} not adoptable, {-1} lapsed.
local me = ARGV[1]
if not alive(me) then return {-1} end
local state = redis.call('HGET', KEYS[2], 'state')
if not state or state == 'finished' then return {0} end
local owner = redis.call('HGET', KEYS[2], 'owner')
if owner ~= me then
  if alive(owner) then return {0} end
  redis.call('HSET', KEYS[2], 'owner', me, 'adopted', state == 'intent' and '1' or '0')
end
return {1, redis.call('HGETALL', KEYS[2])}
