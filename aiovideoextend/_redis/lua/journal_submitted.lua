-- KEYS: seq, entry. ARGV: me, run id, precharge ('' for none), time, answer time ('' for
-- none). 1 done, 0 not my intent.
if redis.call('HGET', KEYS[2], 'state') ~= 'intent' then return 0 end
if redis.call('HGET', KEYS[2], 'owner') ~= ARGV[1] then return 0 end
local seq = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], 'state', 'submitted', 'run_id', ARGV[2], 'submitted_seq', seq,
  'precharge', ARGV[3], 'adopted', '0', 'updated_at', ARGV[4], 'submitted_at', ARGV[5])
return 1
