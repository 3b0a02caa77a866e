-- KEYS: record, index, removal. ARGV: member, cut-off, expire-at time. Deletes the
-- record and keeps its cut-off (one past its own, or the given one, or an earlier
-- removal's, whichever is latest) until the expire-at time. 1 if it existed.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local own = tonumber(redis.call('HGET', KEYS[1], 'not_before') or '0') or 0
local earlier = tonumber(redis.call('GET', KEYS[3]) or '0') or 0
local cut = math.max(own + 1, tonumber(ARGV[2]), earlier)
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('SET', KEYS[3], string.format('%.0f', cut))
redis.call('EXPIREAT', KEYS[3], ARGV[3])
return 1
