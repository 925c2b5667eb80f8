-- KEYS: job hash, stream, events channel
-- ARGV: entry, worker, now, max deliveries, ttl, running event json, cancelled event json
-- One HMGET and one HSET: a redis.call costs more than the HGET it runs (~0.7 µs against 0.2).
local h = redis.call('HMGET', KEYS[1], 'state', 'cancel_requested', 'attempts', 'retries', 'job')
local state = h[1]
if not state then ackdel(KEYS[2], ARGV[1]); return {'gone', ''} end
if terminal(state) then ackdel(KEYS[2], ARGV[1]); return {'skip', state} end
if h[2] == '1' then
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished_at', ARGV[3], 'updated_at', ARGV[3])
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  ackdel(KEYS[2], ARGV[1])
  redis.call('PUBLISH', KEYS[3], ARGV[7])
  return {'skip', 'cancelled'}
end
local attempts = tonumber(h[3] or '0') + 1
local retries = tonumber(h[4] or '0')
-- Starts that were not retries scheduled by a worker are crashed or lost deliveries.
if attempts - retries > tonumber(ARGV[4]) then
  redis.call('HSET', KEYS[1], 'attempts', attempts)
  return {'dead', h[5]}
end
redis.call('HSET', KEYS[1], 'attempts', attempts, 'state', 'running', 'started_at', ARGV[3],
  'updated_at', ARGV[3], 'worker', ARGV[2], 'entry', ARGV[1], 'stage', 'starting', 'percent', 0)
redis.call('PUBLISH', KEYS[3], ARGV[6])
return {'run', h[5], tostring(attempts), tostring(retries)}
