-- KEYS: the tenant's rate key
-- ARGV: emission interval in µs (one request's share of a minute), burst
-- GCRA: the key holds the theoretical arrival time (TAT), in µs of Redis's own clock, so every
-- API replica shares one limit and no replica's clock matters. Same answers as a token bucket of
-- `burst` tokens refilled one per interval. Answers {1, 0} (allowed) or {0, µs to wait}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - interval * tonumber(ARGV[2])
if now < allow_at then return {0, allow_at - now} end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, 0}
