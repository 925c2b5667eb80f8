-- KEYS: job hash, stream, dead stream, events channel
-- ARGV: entry, id, error json, now, ttl, job json, event json
local state = redis.call('HGET', KEYS[1], 'state')
if state and terminal(state) then ackdel(KEYS[2], ARGV[1]); return 'already' end
if state then
  redis.call('HSET', KEYS[1], 'state', 'dead', 'error', ARGV[3], 'finished_at', ARGV[4], 'updated_at', ARGV[4])
  redis.call('EXPIRE', KEYS[1], ARGV[5])
end
local job = ARGV[6]
if job == '' and state then job = redis.call('HGET', KEYS[1], 'job') or '' end
local dead_entry = redis.call('XADD', KEYS[3], 'MAXLEN', '~', 100000, '*', 'id', ARGV[2], 'error', ARGV[3], 'job', job, 'at', ARGV[4])
if state then redis.call('HSET', KEYS[1], 'dead_entry', dead_entry) end
ackdel(KEYS[2], ARGV[1])
redis.call('PUBLISH', KEYS[4], ARGV[7])
return 'ok'
