-- KEYS: signing keys. ARGV: kid, state, record JSON. 1 if inserted; 0 if the kid is
-- taken, or the key is next or active and another key is in that state.
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
if ARGV[2] == 'next' or ARGV[2] == 'active' then
    for _, value in ipairs(redis.call('HVALS', KEYS[1])) do
        if cjson.decode(value).state == ARGV[2] then return 0 end
    end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
