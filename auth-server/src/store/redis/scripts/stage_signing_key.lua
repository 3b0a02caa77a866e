-- KEYS: signing keys. ARGV: kid, record JSON (a next key), expected active kid.
-- 1 if inserted: no key is next and the active key is the expected one.
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
local active = false
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
    local state = cjson.decode(all[i + 1]).state
    if state == 'next' then return 0 end
    if state == 'active' then active = all[i] end
end
if active ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
