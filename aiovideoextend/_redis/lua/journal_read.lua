-- KEYS: workers, ids. ARGV: entry key prefix, entry ids (none: every entry).
-- Returns {id, fields, owner alive (1/0), ...}.
local ids = {}
if #ARGV > 1 then
  for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
else
  ids = redis.call('SMEMBERS', KEYS[2])
end
local living = {}
local out = {}
for _, id in ipairs(ids) do
  local fields = redis.call('HGETALL', ARGV[1] .. id)
  if #fields > 0 then
    local owner = redis.call('HGET', ARGV[1] .. id, 'owner')
    if owner and living[owner] == nil then living[owner] = alive(owner) end
    out[#out + 1] = id
    out[#out + 1] = fields
    out[#out + 1] = (owner and living[owner]) and 1 or 0
  end
end
return out
