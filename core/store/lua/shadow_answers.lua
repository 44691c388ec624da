-- Keeps a flush part's shadow answers beside their requests' mappings (field
-- ``<id>|s`` of the same hash, so with the same expiry), at most once like the
-- counters (the part id in ``flushed``). The answers of one request are merged into one
-- JSON object, shadow -> prediction. A request whose feedback came first ('!' and what
-- it said) has each answer scored now against that label, and counted in
-- ``<shadow>:shadow:late`` (answered after its label: scored all the same).
-- Runs after score_answer.lua.
-- KEYS: requests hash, flushed, window, totals, windows
-- ARGV: now, part id, memory, entries JSON {id: {shadow: prediction}}, mapping TTL,
--       window start, window TTL
if redis.call('ZADD', KEYS[2], 'NX', ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1] - ARGV[3])
local late = {}
local kept = 0
for id, answers in pairs(cjson.decode(ARGV[4])) do
  local field = id .. '|s'
  local held = redis.call('HGET', KEYS[1], field)
  if held and string.sub(held, 1, 1) == '!' then
    local ok, given = pcall(cjson.decode, string.sub(held, 2))
    for shadow, prediction in pairs(answers) do
      late[shadow] = (late[shadow] or 0) + 1
      if ok and type(given) == 'table' then
        score_answer(shadow, prediction, given[1], given[2], given[3], given[4], given[5],
                     KEYS[3], KEYS[4])
      end
    end
  else
    local merged = {}
    if held then
      local ok, decoded = pcall(cjson.decode, held)
      if ok and type(decoded) == 'table' then merged = decoded end
    end
    for shadow, prediction in pairs(answers) do merged[shadow] = prediction end
    redis.call('HSET', KEYS[1], field, cjson.encode(merged))
    kept = kept + 1
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[5])
if next(late) ~= nil then
  for shadow, count in pairs(late) do
    redis.call('HINCRBY', KEYS[3], shadow .. ':shadow:late', count)
    redis.call('HINCRBY', KEYS[4], shadow .. ':shadow:late', count)
  end
  redis.call('ZADD', KEYS[5], ARGV[6], ARGV[6])
  if tonumber(ARGV[7]) > 0 then redis.call('EXPIRE', KEYS[3], ARGV[7]) end
end
return kept
