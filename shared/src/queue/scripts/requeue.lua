-- KEYS: job hash, CPU lane stream, GPU lane stream, dead stream, events channel
-- ARGV: tenant ('' = any), id, now, maxlen, max backlog, event json
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 'not_found' end
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'tenant') ~= ARGV[1] then return 'not_found' end
if state ~= 'dead' and state ~= 'failed' then return 'state:' .. state end
local stream = KEYS[2]
if redis.call('HGET', KEYS[1], 'lane') == 'gpu' then stream = KEYS[3] end
local backlog = tonumber(ARGV[5])
if backlog > 0 and redis.call('XLEN', stream) >= backlog then return 'full' end
local dead_entry = redis.call('HGET', KEYS[1], 'dead_entry')
if dead_entry then redis.call('XDEL', KEYS[4], dead_entry) end
redis.call('HDEL', KEYS[1], 'error', 'result', 'started_at', 'finished_at', 'cancel_requested',
  'dead_entry', 'retry_at', 'worker', 'entry', 'stage', 'percent')
redis.call('HSET', KEYS[1], 'state', 'queued', 'attempts', 0, 'retries', 0, 'updated_at', ARGV[3])
redis.call('PERSIST', KEYS[1])
redis.call('XADD', stream, 'MAXLEN', '~', ARGV[4], '*', 'id', ARGV[2])
redis.call('PUBLISH', KEYS[5], ARGV[6])
return 'queued'
