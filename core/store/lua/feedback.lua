-- One feedback, atomically and idempotently. The request's claim records the feedback's
-- token, what it said (metric, kind, value) and the answer it got: the same token again
-- (the reply was lost and the call is retried) gets that answer again and changes
-- nothing; the same feedback under another token (a client sending it again) gets it
-- too, marked 'repeat'; any other feedback for the request is a 'duplicate'. Unclaimed,
-- it is counted when the request's mapping is in Redis (or given, when the receiving
-- process served the request and has not flushed it yet), else parked until the mapping
-- arrives or the wait ends (or, with park=0, reported unknown and left unclaimed).
-- Runs after count_feedback.lua.
-- KEYS: claim, pending hash, pending due set, joins hash, window, totals, windows,
--       then the request hashes of every hour a mapping may be kept in
-- ARGV: request id, token, metric, kind, value, served or '', window start,
--       window TTL, claim TTL, expiry time, park (1/0), unit key prefix, unit TTL,
--       shadows (1/0: the experiment mirrors shadows; their answers are scored too),
--       which of the request hashes holds the mapping given (1-based; 0: unknown)
local claim = redis.call('GET', KEYS[1])
if claim then
  if string.sub(claim, 1, 1) ~= '[' then
    -- a claim set before claims kept their answer: the token alone
    if claim == ARGV[2] then return {'again'} end
    return {'duplicate'}
  end
  local c = cjson.decode(claim)
  if c[1] == ARGV[2] then return {c[5], c[6], c[7]} end
  if c[2] == ARGV[3] and c[3] == ARGV[4] and c[4] == ARGV[5] then
    return {c[5], c[6], c[7], 'repeat'}
  end
  return {'duplicate'}
end
local function answer(status, served, amount)
  redis.call('SET', KEYS[1], cjson.encode({ARGV[2], ARGV[3], ARGV[4], ARGV[5], status, served,
                                           amount}), 'EX', ARGV[9])
  return {status, served, amount}
end
local served = ARGV[6]
local at = tonumber(ARGV[15]) or 0
local hash = at > 0 and KEYS[7 + at]
if served == '' then
  for i = 8, #KEYS do
    local found = redis.call('HGET', KEYS[i], ARGV[1])
    if found then
      served, hash = found, KEYS[i]
      break
    end
  end
end
if served == '' then
  if ARGV[11] ~= '1' then return {'unknown'} end
  redis.call('HSET', KEYS[2], ARGV[1], cjson.encode({ARGV[3], ARGV[4], ARGV[5], ARGV[14]}))
  redis.call('ZADD', KEYS[3], ARGV[10], ARGV[1])
  redis.call('HINCRBY', KEYS[4], 'parked', 1)
  return answer('pending', '', '0')
end
if served == '-' then return answer('unscored', served, '0') end
local amount = count_feedback(served, ARGV[3], ARGV[4], ARGV[5], KEYS[5], KEYS[6], KEYS[7],
                              ARGV[7], tonumber(ARGV[8]), ARGV[12], tonumber(ARGV[13]),
                              ARGV[1], ARGV[14] == '1' and hash, tonumber(ARGV[9]))
if not amount then return answer('malformed', served, '0') end
return answer('counted', served, amount)
