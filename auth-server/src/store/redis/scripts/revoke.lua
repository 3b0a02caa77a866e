-- KEYS: revocation. ARGV: expires_at, expire-at time. Keeps the later expiry.
local current = tonumber(redis.call('GET', KEYS[1]) or '-1')
if current ~= nil and current >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('EXPIREAT', KEYS[1], ARGV[2])
return 1
