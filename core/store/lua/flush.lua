-- One batch of deltas added to a window hash and the totals hash atomically, at most
-- once: a flush part (batch id + window) already in the ``flushed`` set was applied
-- before (a retry after a reply was lost), and is skipped. Integers go through HINCRBY,
-- floats (they carry a '.' or an exponent) through HINCRBYFLOAT, so counts stay exact
-- integers in Redis.
-- KEYS: window, totals, windows, flushed
-- ARGV: window start, window TTL, now, part id, memory (s), then field, amount, ...
if redis.call('ZADD', KEYS[4], 'NX', ARGV[3], ARGV[4]) == 0 then return 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', ARGV[3] - ARGV[5])
local window = ARGV[1]
local ttl = tonumber(ARGV[2])
for i = 6, #ARGV, 2 do
  local f, v = ARGV[i], ARGV[i + 1]
  if string.find(v, '[%.eE]') then
    redis.call('HINCRBYFLOAT', KEYS[1], f, v)
    redis.call('HINCRBYFLOAT', KEYS[2], f, v)
  else
    redis.call('HINCRBY', KEYS[1], f, v)
    redis.call('HINCRBY', KEYS[2], f, v)
  end
end
redis.call('ZADD', KEYS[3], window, window)
if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) end
return 1
