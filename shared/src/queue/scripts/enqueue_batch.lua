-- A batch: every job and the batch record in one step, or nothing (a lane's backlog full).
-- KEYS: CPU lane stream, GPU lane stream, batch key, job hash per job
-- ARGV: batch json, tenant, now, ttl, stream maxlen, max backlog, then id, job json and lane
--       ('cpu' | 'gpu') per job
local n = #KEYS - 3
local backlog = tonumber(ARGV[6])
if backlog > 0 then
  local adding = {cpu = 0, gpu = 0}
  for i = 1, n do
    local lane = ARGV[6 + 3 * i]
    adding[lane] = adding[lane] + 1
  end
  for lane, stream in pairs({cpu = KEYS[1], gpu = KEYS[2]}) do
    if adding[lane] > 0 then
      local len = redis.call('XLEN', stream)
      if len + adding[lane] > backlog then return {'full', tostring(len)} end
    end
  end
end
for i = 1, n do
  local key, id, job, lane = KEYS[i + 3], ARGV[4 + 3 * i], ARGV[5 + 3 * i], ARGV[6 + 3 * i]
  redis.call('HSET', key, 'state', 'queued', 'job', job, 'tenant', ARGV[2],
    'attempts', 0, 'created_at', ARGV[3], 'updated_at', ARGV[3])
  local stream = KEYS[1]
  if lane == 'gpu' then
    redis.call('HSET', key, 'lane', 'gpu')
    stream = KEYS[2]
  end
  redis.call('XADD', stream, 'MAXLEN', '~', ARGV[5], '*', 'id', id)
end
redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[4])
return {'created', tostring(n)}
