-- Functions prepended to the scripts that use them (forget, start, finish, retry, dead,
-- cancel). No KEYS or ARGV of its own.
local function terminal(s)
  return s == 'succeeded' or s == 'failed' or s == 'cancelled' or s == 'dead'
end
local function ackdel(stream, entry)
  if entry ~= '' then
    redis.call('XACK', stream, 'workers', entry)
    redis.call('XDEL', stream, entry)
  end
end
