-- KEYS: job hash, CPU lane delayed set, GPU lane delayed set, events channel
-- ARGV: tenant, id, now, ttl, event json
local state = redis.call('HGET', KEYS[1], 'state')
if (not state) or redis.call('HGET', KEYS[1], 'tenant') ~= ARGV[1] then return 'not_found' end
if terminal(state) then return 'terminal:' .. state end
if state == 'queued' then
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished_at', ARGV[3], 'updated_at', ARGV[3])
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  redis.call('ZREM', KEYS[2], ARGV[2])
  redis.call('ZREM', KEYS[3], ARGV[2])
  redis.call('PUBLISH', KEYS[4], ARGV[5])
  return 'cancelled'
end
redis.call('HSET', KEYS[1], 'cancel_requested', 1, 'updated_at', ARGV[3])
return 'cancelling'
