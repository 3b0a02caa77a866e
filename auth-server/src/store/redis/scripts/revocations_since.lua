-- KEYS: meta, log, entries. ARGV: a new epoch (kept only if the feed has none), the caller's
-- epoch and seq ("" when it has no cursor). Returns {epoch, seq, complete (0/1), {member,
-- "not_before until", ...}}: the entries after the caller's seq when its cursor is of this
-- epoch, not ahead of seq and not behind the purge floor; else every entry.
redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1])
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'seq', 'floor')
local epoch, seq, floor = meta[1], tonumber(meta[2] or '0'), tonumber(meta[3] or '0')
local since = tonumber(ARGV[3])
local from = '-inf'
local complete = 1
if ARGV[2] == epoch and since and since <= seq and since >= floor then
  if since == seq then return {epoch, seq, 0, {}} end
  from = '(' .. ARGV[3]
  complete = 0
end
local out = {}
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], from, seq)) do
  local value = redis.call('HGET', KEYS[3], member)
  if value then
    out[#out + 1] = member
    out[#out + 1] = value
  end
end
return {epoch, seq, complete, out}
