-- KEYS: signing keys. ARGV: kid, now, replacement kid, replacement record JSON (an
-- active key). Returns {code, kid}: 0 unknown, 1 already revoked, 2 revoked (it did
-- not sign), 3 revoked the active key and `kid` took over. A revoked key keeps its
-- record without its private key and without a removal time.
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return {0, ''} end
local key = cjson.decode(raw)
if key.state == 'revoked' then return {1, ''} end
local was_active = key.state == 'active'
local now = tonumber(ARGV[2])
key.state = 'revoked'
if not key.retired_at then key.retired_at = now end
key.expires_at = nil
key.sealed = ''
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(key))
if not was_active then return {2, ''} end
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
    local other = cjson.decode(all[i + 1])
    if other.state == 'next' then
        other.state = 'active'
        other.activates_at = now
        redis.call('HSET', KEYS[1], all[i], cjson.encode(other))
        return {3, all[i]}
    end
end
redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
return {3, ARGV[3]}
