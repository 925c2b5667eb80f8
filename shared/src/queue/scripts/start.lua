-- KEYS: job hash, stream, events channel
-- ARGV: entry, worker, now, max deliveries, ttl, running event json, cancelled event json
local state = redis.call('HGET', KEYS[1], 'state')
if not state then ackdel(KEYS[2], ARGV[1]); return {'gone', ''} end
if terminal(state) then ackdel(KEYS[2], ARGV[1]); return {'skip', state} end
if redis.call('HGET', KEYS[1], 'cancel_requested') == '1' then
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished_at', ARGV[3], 'updated_at', ARGV[3])
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  ackdel(KEYS[2], ARGV[1])
  redis.call('PUBLISH', KEYS[3], ARGV[7])
  return {'skip', 'cancelled'}
end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
local retries = tonumber(redis.call('HGET', KEYS[1], 'retries') or '0')
-- Starts that were not retries scheduled by a worker are crashed or lost deliveries.
if attempts - retries > tonumber(ARGV[4]) then return {'dead', redis.call('HGET', KEYS[1], 'job')} end
redis.call('HSET', KEYS[1], 'state', 'running', 'started_at', ARGV[3], 'updated_at', ARGV[3],
  'worker', ARGV[2], 'entry', ARGV[1], 'stage', 'starting', 'percent', 0)
redis.call('PUBLISH', KEYS[3], ARGV[6])
return {'run', redis.call('HGET', KEYS[1], 'job'), tostring(attempts), tostring(retries)}
