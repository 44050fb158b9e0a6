-- Prologue of every script: the Redis server's clock, so that workers' clocks never enter.
-- Times are integer microseconds (exact in a double); fmt writes one without an exponent.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function fmt(x) return string.format('%.0f', x) end
