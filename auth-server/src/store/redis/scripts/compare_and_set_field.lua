-- KEYS: record. ARGV: field, expected, new value. 1 if the field was `expected`.
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
