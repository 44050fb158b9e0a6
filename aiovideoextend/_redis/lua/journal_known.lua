-- KEYS: seq, known, snap. ARGV: complete ('1'/'0'), run ids... Returns the sequence number.
local seq = redis.call('INCR', KEYS[1])
for i = 2, #ARGV do
  redis.call('HSETNX', KEYS[2], ARGV[i], seq)
end
if ARGV[1] == '1' then redis.call('SETNX', KEYS[3], seq) end
return seq
