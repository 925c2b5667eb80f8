-- Fails a job of a lane that no worker has served for the configured time (`no_gpu_worker`),
-- unless a worker of the lane announced itself since the caller looked.
-- KEYS: job hash, lane stream, lane delayed set, lane alive-until key, events channel,
--       finished-counters hash
-- ARGV: entry ('' for a job waiting in the delayed set), id, now, cutoff (now - timeout),
--       error json, ttl, event json
local alive = tonumber(redis.call('GET', KEYS[4]) or '0')
if alive > tonumber(ARGV[4]) then return 'served' end
local state = redis.call('HGET', KEYS[1], 'state')
if (not state) or terminal(state) then
  ackdel(KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[2])
  return 'already'
end
-- Queued, or `running` on a worker that has not been seen for the whole timeout: nobody will
-- finish it.
redis.call('HSET', KEYS[1], 'state', 'failed', 'error', ARGV[5], 'finished_at', ARGV[3],
  'updated_at', ARGV[3])
redis.call('HDEL', KEYS[1], 'cancel_requested', 'retry_at')
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('HINCRBY', KEYS[6], 'failed', 1)
ackdel(KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('PUBLISH', KEYS[5], ARGV[7])
return 'failed'
