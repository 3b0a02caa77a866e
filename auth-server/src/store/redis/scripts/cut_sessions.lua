-- KEYS: record. ARGV: stamp, cut-off, then other field/value pairs. Writes the stamp
-- and a cut-off past the one held, with the other fields. 1 if the record exists.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local held = tonumber(redis.call('HGET', KEYS[1], 'not_before') or '0') or 0
local cut = math.max(held + 1, tonumber(ARGV[2]))
redis.call('HSET', KEYS[1], 'stamp', ARGV[1],
    'not_before', string.format('%.0f', cut), unpack(ARGV, 3))
return 1
