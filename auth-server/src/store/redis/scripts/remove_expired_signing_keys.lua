-- KEYS: signing keys. ARGV: now. Deletes retired and revoked keys whose removal
-- time has come; returns how many.
local now = tonumber(ARGV[1])
local removed = 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
    local key = cjson.decode(all[i + 1])
    if (key.state == 'retired' or key.state == 'revoked')
        and key.expires_at and key.expires_at <= now then
        redis.call('HDEL', KEYS[1], all[i])
        removed = removed + 1
    end
end
return removed
