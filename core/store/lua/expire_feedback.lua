-- Drops parked feedback whose wait is over, counting it; returns how many it dropped
-- now, how many still wait, and the all-time parked, joined, expired.
-- KEYS: pending hash, pending due set, joins hash
-- ARGV: now, at most this many
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #ids > 0 then
  redis.call('HDEL', KEYS[1], unpack(ids))
  redis.call('ZREM', KEYS[2], unpack(ids))
  redis.call('HINCRBY', KEYS[3], 'expired', #ids)
end
local joins = redis.call('HMGET', KEYS[3], 'parked', 'joined', 'expired')
return {#ids, redis.call('ZCARD', KEYS[2]), tonumber(joins[1]) or 0, tonumber(joins[2]) or 0,
        tonumber(joins[3]) or 0}
