-- KEYS: job hash, stream, delayed set, events channel
-- ARGV: entry, id, due, error json, now, ttl, event json
local state = redis.call('HGET', KEYS[1], 'state')
if (not state) or terminal(state) then ackdel(KEYS[2], ARGV[1]); return 'already' end
if redis.call('HGET', KEYS[1], 'cancel_requested') == '1' then
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished_at', ARGV[5], 'updated_at', ARGV[5])
  redis.call('EXPIRE', KEYS[1], ARGV[6])
  ackdel(KEYS[2], ARGV[1])
  return 'cancelled'
end
redis.call('HSET', KEYS[1], 'state', 'queued', 'error', ARGV[4], 'updated_at', ARGV[5],
  'stage', 'retry_wait', 'percent', 0, 'retry_at', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'retries', 1)
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
ackdel(KEYS[2], ARGV[1])
redis.call('PUBLISH', KEYS[4], ARGV[7])
return 'ok'
