-- KEYS: meta, log, entries, ends. ARGV: now, the most entries to delete. Deletes entries whose
-- end is before now and raises the purge floor to the highest seq deleted. Returns how many.
local gone = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[1], 'LIMIT', 0, ARGV[2])
if #gone == 0 then return 0 end
local floor = tonumber(redis.call('HGET', KEYS[1], 'floor') or '0')
for _, member in ipairs(gone) do
  local seq = tonumber(redis.call('ZSCORE', KEYS[2], member) or '0')
  if seq > floor then floor = seq end
  redis.call('ZREM', KEYS[2], member)
  redis.call('HDEL', KEYS[3], member)
  redis.call('ZREM', KEYS[4], member)
end
redis.call('HSET', KEYS[1], 'floor', floor)
return #gone
