-- KEYS: token, successor. ARGV: now, sealed successor, successor id, successor's
-- expire-at time, then the successor's field/value pairs.
-- Returns {1, {}} when rotated, {-1, {}} when the successor id is taken, and
-- {0, current token as field/value pairs, empty if gone} when the token is used or gone.
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, {}} end
if redis.call('HEXISTS', KEYS[1], 'used_at') == 1 then
    return {0, redis.call('HGETALL', KEYS[1])}
end
if redis.call('EXISTS', KEYS[2]) == 1 then return {-1, {}} end
redis.call('HSET', KEYS[1], 'used_at', ARGV[1], 'sealed_successor', ARGV[2], 'successor_id', ARGV[3])
redis.call('HSET', KEYS[2], unpack(ARGV, 5))
redis.call('EXPIREAT', KEYS[2], ARGV[4])
return {1, {}}
