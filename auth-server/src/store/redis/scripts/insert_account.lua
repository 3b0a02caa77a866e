-- KEYS: record, index, removal. ARGV: member, not_before, then the other field/value
-- pairs. Inserts the record and its index member, with the cut-off raised to a
-- removed namesake's. 1 if inserted, 0 if taken.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local removed = tonumber(redis.call('GET', KEYS[3]) or '0') or 0
local not_before = math.max(tonumber(ARGV[2]), removed)
redis.call('HSET', KEYS[1], 'not_before', string.format('%.0f', not_before),
    unpack(ARGV, 3))
redis.call('SADD', KEYS[2], ARGV[1])
return 1
