-- KEYS: login counters of one subject. ARGV: the latest window end that was open when
-- the slots were taken, then per counter `give-back` (one less, never below zero) or
-- `forget` (zero). Windows opened later are left alone.
local latest_end = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
    local state = redis.call('HMGET', key, 'count', 'end')
    local count, window_end = tonumber(state[1]), tonumber(state[2])
    if count ~= nil and window_end ~= nil and window_end <= latest_end then
        if ARGV[1 + i] == 'forget' then
            redis.call('HSET', key, 'count', 0)
        elseif count > 0 then
            redis.call('HINCRBY', key, 'count', -1)
        end
    end
end
return 0
