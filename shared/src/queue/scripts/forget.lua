-- KEYS: job hash
-- ARGV: tenant
local state = redis.call('HGET', KEYS[1], 'state')
if (not state) or redis.call('HGET', KEYS[1], 'tenant') ~= ARGV[1] then return 'not_found' end
if not terminal(state) then return 'state:' .. state end
redis.call('DEL', KEYS[1])
return 'forgotten'
