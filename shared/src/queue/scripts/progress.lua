-- KEYS: job hash, events channel
-- ARGV: stage, percent, now, event json
local h = redis.call('HMGET', KEYS[1], 'state', 'cancel_requested')
if h[1] ~= 'running' then return 1 end
redis.call('HSET', KEYS[1], 'stage', ARGV[1], 'percent', ARGV[2], 'updated_at', ARGV[3])
redis.call('PUBLISH', KEYS[2], ARGV[4])
if h[2] == '1' then return 1 end
return 0
