-- KEYS: job hash, stream, events channel, finished-counters hash
-- ARGV: entry, state, field ('result' | 'error' | ''), payload, now, ttl, event json
local h = redis.call('HMGET', KEYS[1], 'state', 'started_at')
local state = h[1]
if (not state) or terminal(state) then ackdel(KEYS[2], ARGV[1]); return 'already' end
-- Counted here, once per job, so the average never includes a duplicate delivery.
local started = tonumber(h[2] or '')
if ARGV[2] == 'succeeded' or ARGV[2] == 'failed' then redis.call('HINCRBY', KEYS[4], ARGV[2], 1) end
if ARGV[2] == 'succeeded' and started then
  redis.call('HINCRBY', KEYS[4], 'succeeded_ms', math.max(0, tonumber(ARGV[5]) - started))
end
local fields = {'state', ARGV[2], 'finished_at', ARGV[5], 'updated_at', ARGV[5]}
if ARGV[3] ~= '' then
  fields[#fields + 1] = ARGV[3]; fields[#fields + 1] = ARGV[4]
end
if ARGV[2] == 'succeeded' then
  fields[#fields + 1] = 'stage'; fields[#fields + 1] = 'done'
  fields[#fields + 1] = 'percent'; fields[#fields + 1] = 100
end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('EXPIRE', KEYS[1], ARGV[6])
ackdel(KEYS[2], ARGV[1])
redis.call('PUBLISH', KEYS[3], ARGV[7])
return 'ok'
