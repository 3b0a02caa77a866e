-- KEYS: client. ARGV: new secret hash, previous secret's end ('' for none), access
-- token cut-off ('' to leave it; else raised past the one held). The old hash becomes the previous one, replacing
-- any older previous secret. 1 if the client exists.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local old = redis.call('HGET', KEYS[1], 'secret_hash') or ''
-- The new hash (salted, never made twice) already in place: this rotation ran before and the
-- request came again (a Cluster client resends after a timeout). Running it again would make
-- the new hash the previous one and end the old secret's overlap at once.
if old == ARGV[1] then return 1 end
if ARGV[2] == '' then
    redis.call('HDEL', KEYS[1], 'previous_secret_hash', 'previous_secret_expires_at')
else
    redis.call('HSET', KEYS[1], 'previous_secret_hash', old,
        'previous_secret_expires_at', ARGV[2])
end
redis.call('HSET', KEYS[1], 'secret_hash', ARGV[1])
if ARGV[3] ~= '' then
    local held = tonumber(redis.call('HGET', KEYS[1], 'not_before') or '0') or 0
    local cut = math.max(held + 1, tonumber(ARGV[3]))
    redis.call('HSET', KEYS[1], 'not_before', string.format('%.0f', cut))
end
return 1
