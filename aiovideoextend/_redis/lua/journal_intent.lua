-- KEYS: workers, seq, ids, entry. ARGV: me, entry id, request key, model, position, time.
-- Returns {1, seq} claimed, {0} held by another worker or finished, {-1} my lease lapsed,
-- {-2} mine and past its intent.
local me = ARGV[1]
if not alive(me) then return {-1} end
local state = redis.call('HGET', KEYS[4], 'state')
if state then
  local owner = redis.call('HGET', KEYS[4], 'owner')
  if owner ~= me or state == 'finished' then return {0} end
  if state ~= 'intent' then return {-2} end
end
local seq = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[4], 'request_key', ARGV[3], 'model', ARGV[4], 'position', ARGV[5],
  'state', 'intent', 'intent_seq', seq, 'intent_at', ARGV[6], 'owner', me, 'adopted', '0',
  'updated_at', ARGV[6])
redis.call('SADD', KEYS[3], ARGV[2])
return {1, seq}
