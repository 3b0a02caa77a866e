-- KEYS: signing keys. ARGV: kid, now, removal time of the retired key.
-- 1 if the next key `kid` was due and is now active, the previous active retired.
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local key = cjson.decode(raw)
local now = tonumber(ARGV[2])
if key.state ~= 'next' or key.activates_at > now then return 0 end
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
    local other = cjson.decode(all[i + 1])
    if other.state == 'active' then
        other.state = 'retired'
        other.retired_at = now
        other.expires_at = tonumber(ARGV[3])
        redis.call('HSET', KEYS[1], all[i], cjson.encode(other))
    end
end
key.state = 'active'
key.activates_at = now
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(key))
return 1
