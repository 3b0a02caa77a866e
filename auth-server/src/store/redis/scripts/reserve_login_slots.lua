-- KEYS: login counters of one subject. ARGV: now, window, TTL of a new window, then
-- each counter's limit. Returns 0 when a slot was counted on every counter, else the
-- latest end among the windows at their limit, having counted nothing.
-- A window starts at the first slot after the previous one ended.
local now = tonumber(ARGV[1])
local open = {}
local refused_until = 0
for i, key in ipairs(KEYS) do
    local state = redis.call('HMGET', key, 'count', 'end')
    local count, window_end = tonumber(state[1]), tonumber(state[2])
    if count ~= nil and window_end ~= nil and window_end > now then
        open[i] = true
        if count >= tonumber(ARGV[3 + i]) and window_end > refused_until then
            refused_until = window_end
        end
    end
end
if refused_until > 0 then return refused_until end
for i, key in ipairs(KEYS) do
    if open[i] then
        redis.call('HINCRBY', key, 'count', 1)
    else
        local window_end = now + tonumber(ARGV[2])
        redis.call('HSET', key, 'count', 1, 'end', string.format('%.0f', window_end))
        redis.call('EXPIRE', key, ARGV[3])
    end
end
return 0
