-- A batch: every job and the batch record in one step, or nothing (backlog full).
-- KEYS: stream, batch key, job hash per job
-- ARGV: batch json, tenant, now, ttl, stream maxlen, max backlog, then id and job json per job
local n = #KEYS - 2
local backlog = tonumber(ARGV[6])
if backlog > 0 then
  local len = redis.call('XLEN', KEYS[1])
  if len + n > backlog then return {'full', tostring(len)} end
end
for i = 1, n do
  redis.call('HSET', KEYS[i + 2], 'state', 'queued', 'job', ARGV[6 + 2 * i], 'tenant', ARGV[2],
    'attempts', 0, 'created_at', ARGV[3], 'updated_at', ARGV[3])
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[5], '*', 'id', ARGV[5 + 2 * i])
end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[4])
return {'created', tostring(n)}
