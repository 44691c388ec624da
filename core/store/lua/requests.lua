-- A batch of request -> served-variant entries added, sent as one JSON object: decoding
-- it here costs Redis less than the client spends packing one HSET argument per request.
-- Feedback that arrived before its mapping (parked by the feedback script) is counted
-- here, in the same atomic step, and leaves the parking (feedback for a request its
-- variant did not answer, ``UNSCORED``, leaves uncounted). Running it twice (a retry
-- after a lost reply) counts nothing twice: a joined feedback is no longer parked. A
-- parked feedback of an experiment with shadows (its 4th element '1') scores the shadow
-- answers kept beside the mapping.
-- Runs after count_feedback.lua.
-- KEYS: requests hash, pending hash, pending due set, joins hash, window, totals, windows
-- ARGV: entries JSON, mapping TTL, window start, window TTL, unit key prefix, unit TTL
local entries = cjson.decode(ARGV[1])
local args, n = {}, 0
for id, served in pairs(entries) do
  args[n + 1], args[n + 2] = id, served
  n = n + 2
  if n >= 2000 then
    redis.call('HSET', KEYS[1], unpack(args, 1, n))
    n = 0
  end
end
if n > 0 then redis.call('HSET', KEYS[1], unpack(args, 1, n)) end
redis.call('EXPIRE', KEYS[1], ARGV[2])
if redis.call('ZCARD', KEYS[3]) == 0 then return 0 end
local joined, unscored = 0, 0
for id, served in pairs(entries) do
  local parked = redis.call('HGET', KEYS[2], id)
  if parked then
    if served == '-' then
      unscored = unscored + 1
    else
      local p = cjson.decode(parked)
      count_feedback(served, p[1], p[2], p[3], KEYS[5], KEYS[6], KEYS[7], ARGV[3],
                     tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6]), id,
                     p[4] == '1' and KEYS[1], tonumber(ARGV[2]))
      joined = joined + 1
    end
    redis.call('HDEL', KEYS[2], id)
    redis.call('ZREM', KEYS[3], id)
  end
end
if joined > 0 then redis.call('HINCRBY', KEYS[4], 'joined', joined) end
if unscored > 0 then redis.call('HINCRBY', KEYS[4], 'unscored', unscored) end
return joined
