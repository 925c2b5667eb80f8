-- Ends a batch of jobs (coalesce.rs): those of one worker that ended while the last call was out.
-- KEYS: finished-counters hash, then three for each job: job hash, events channel, its lane's
--       stream
-- ARGV: now, ttl, then five for each job: entry, state, field ('result' | 'error' | ''),
--       payload, event json
-- Answers 'ok' or 'already' for each job, in order.
-- What is the same for the whole batch is done once at the end: a redis.call costs ~1.5 µs of
-- Redis's time beyond the command it runs, more than most of these commands.
local counts = {succeeded = 0, failed = 0, succeeded_ms = 0}
local acks = {}
local function ack(stream, entry)
  if entry == '' then return end
  if not acks[stream] then acks[stream] = {} end
  local t = acks[stream]
  t[#t + 1] = entry
end
local function finish(job, events, stream, entry, to, field, payload, ev)
  local h = redis.call('HMGET', job, 'state', 'started_at')
  local state = h[1]
  if (not state) or terminal(state) then ack(stream, entry); return 'already' end
  -- Counted here, once per job, so the average never includes a duplicate delivery.
  local started = tonumber(h[2] or '')
  if to == 'succeeded' or to == 'failed' then counts[to] = counts[to] + 1 end
  if to == 'succeeded' and started then
    counts.succeeded_ms = counts.succeeded_ms + math.max(0, tonumber(ARGV[1]) - started)
  end
  local fields = {'state', to, 'finished_at', ARGV[1], 'updated_at', ARGV[1]}
  if field ~= '' then
    fields[#fields + 1] = field; fields[#fields + 1] = payload
  end
  if to == 'succeeded' then
    fields[#fields + 1] = 'stage'; fields[#fields + 1] = 'done'
    fields[#fields + 1] = 'percent'; fields[#fields + 1] = 100
  end
  redis.call('HSET', job, unpack(fields))
  redis.call('EXPIRE', job, ARGV[2])
  ack(stream, entry)
  redis.call('PUBLISH', events, ev)
  return 'ok'
end
local out = {}
for j = 0, (#ARGV - 2) / 5 - 1 do
  local a = 3 + j * 5
  local k = 2 + j * 3
  out[#out + 1] = finish(KEYS[k], KEYS[k + 1], KEYS[k + 2], ARGV[a], ARGV[a + 1], ARGV[a + 2],
    ARGV[a + 3], ARGV[a + 4])
end
for stream, entries in pairs(acks) do
  redis.call('XACK', stream, 'workers', unpack(entries))
  redis.call('XDEL', stream, unpack(entries))
end
for field, n in pairs(counts) do
  if n > 0 then redis.call('HINCRBY', KEYS[1], field, n) end
end
return out
