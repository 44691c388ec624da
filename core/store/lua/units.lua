-- The per-unit request counts of one flush part (x = requests, y = errors), at most once
-- like the counters (the part id in ``flushed``), sent as one JSON array of
-- [state field, sums prefix, [[unit, requests, errors], ...]] per epoch and variant.
-- Unit "" stands for requests that named no unit: each is a unit of one request (x = 1,
-- y = its error), so they add to the sums directly. Unit hashes are ``ARGV[5] .. unit``,
-- in the experiment's hash slot like all its keys.
-- Runs after unit_sums.lua.
-- KEYS: totals, flushed
-- ARGV: now, part id, memory, unit TTL, unit key prefix, groups (JSON)
if redis.call('ZADD', KEYS[2], 'NX', ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1] - ARGV[3])
local ttl = tonumber(ARGV[4])
local sums = {}
for _, group in ipairs(cjson.decode(ARGV[6])) do
  local state, prefix = group[1], group[2]
  for _, entry in ipairs(group[3]) do
    local unit, requests, errors = entry[1], entry[2], entry[3]
    if unit == '' then
      local s = sums[prefix]
      if not s then
        s = {0, 0, 0, 0, 0, 0}
        sums[prefix] = s
      end
      s[1], s[2], s[3] = s[1] + requests, s[2] + requests, s[3] + requests
      s[4], s[5], s[6] = s[4] + errors, s[5] + errors, s[6] + errors
    else
      local x0, y0, x1, y1 = step_unit(ARGV[5] .. unit, state, requests, errors, ttl)
      add_sums(sums, prefix, x0, y0, x1, y1)
    end
  end
end
write_sums(KEYS[1], sums)
return 1
