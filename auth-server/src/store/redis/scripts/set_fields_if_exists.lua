-- KEYS: record. ARGV: field/value pairs. Never creates a record. 1 if set.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
