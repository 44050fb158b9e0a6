-- Journal prologue: whether a worker's lease runs (KEYS[1] is the workers' sorted set).
local function alive(worker)
  if not worker or worker == '' then return false end
  local expiry = redis.call('ZSCORE', KEYS[1], worker)
  return expiry ~= false and tonumber(expiry) > now
end
