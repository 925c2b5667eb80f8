-- KEYS: the job's lane stream, job hash, idempotency key (a stand-in in the same slot when there
--       is none)
-- ARGV: id, job json, tenant, now, idem ttl, stream maxlen, max backlog, '1' if idempotent, lane
if ARGV[8] == '1' then
  local existing = redis.call('GET', KEYS[3])
  if existing then return {'existing', existing} end
end
local backlog = tonumber(ARGV[7])
if backlog > 0 then
  local len = redis.call('XLEN', KEYS[1])
  if len >= backlog then return {'full', tostring(len)} end
end
redis.call('HSET', KEYS[2], 'state', 'queued', 'job', ARGV[2], 'tenant', ARGV[3],
  'attempts', 0, 'created_at', ARGV[4], 'updated_at', ARGV[4])
-- Only the GPU lane is written down: a record without it is in the CPU lane (and records of
-- versions before lanes stay readable).
if ARGV[9] == 'gpu' then redis.call('HSET', KEYS[2], 'lane', 'gpu') end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[6], '*', 'id', ARGV[1])
if ARGV[8] == '1' then redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[5]) end
return {'created', ARGV[1]}
