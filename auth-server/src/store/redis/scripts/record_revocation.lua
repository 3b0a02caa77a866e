-- KEYS: meta, log, entries, ends (all under one hash tag). ARGV: a new epoch (kept only if the
-- feed has none), member ("kind:key"), not_before, until. Replaces the member's entry with the
-- next seq, keeping the later not_before and until of the two. Returns the seq.
redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1])
local not_before, ends = tonumber(ARGV[3]), tonumber(ARGV[4])
local old = redis.call('HGET', KEYS[3], ARGV[2])
if old then
  local old_not_before, old_ends = string.match(old, '^(%d+) (%d+)$')
  if old_not_before then
    not_before = math.max(not_before, tonumber(old_not_before))
    ends = math.max(ends, tonumber(old_ends))
  end
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('ZADD', KEYS[2], seq, ARGV[2])
redis.call('HSET', KEYS[3], ARGV[2], string.format('%d %d', not_before, ends))
redis.call('ZADD', KEYS[4], ends, ARGV[2])
return seq
