-- Library: per-unit sums. ``step_unit`` adds a unit's new counts (dx, dy) to its running
-- counts (x0, y0) -> (x1, y1), kept as "x:y" in field ``state`` of the unit's hash ``key``
-- (false: a unit of one request, with no hash) and refreshes its expiry; ``add_sums`` adds
-- the change to the sums of its variant and epoch (a sums prefix,
-- ``schema.unit_requests_prefix``/``unit_metric_prefix``): units += 1 when x0 = 0,
-- Σx += x1 - x0, Σx² += x1² - x0², Σxy += x1·y1 - x0·y0, ...; ``write_sums`` adds them to
-- the totals hash, once per prefix and script run rather than once per unit. Counts are
-- integers (HINCRBY, printed with %d: tostring would give 1e+15).
local function step_unit(key, state, dx, dy, ttl)
  local x0, y0 = 0, 0
  if key then
    local held = redis.call('HGET', key, state)
    if held then
      local a, b = string.match(held, '^([^:]*):(.*)$')
      x0, y0 = tonumber(a) or 0, tonumber(b) or 0
    end
    redis.call('HSET', key, state, string.format('%d:%.17g', x0 + dx, y0 + dy))
    if ttl > 0 then redis.call('EXPIRE', key, ttl) end
  end
  return x0, y0, x0 + dx, y0 + dy
end

local function add_sums(sums, prefix, x0, y0, x1, y1)
  local s = sums[prefix]
  if not s then
    s = {0, 0, 0, 0, 0, 0}
    sums[prefix] = s
  end
  if x0 == 0 then s[1] = s[1] + 1 end
  s[2] = s[2] + (x1 - x0)
  s[3] = s[3] + (x1 * x1 - x0 * x0)
  s[4] = s[4] + (y1 - y0)
  s[5] = s[5] + (y1 * y1 - y0 * y0)
  s[6] = s[6] + (x1 * y1 - x0 * y0)
end

local function write_sums(totals, sums)
  for prefix, s in pairs(sums) do
    redis.call('HINCRBY', totals, prefix .. 'units', string.format('%d', s[1]))
    redis.call('HINCRBY', totals, prefix .. 'x', string.format('%d', s[2]))
    redis.call('HINCRBY', totals, prefix .. 'xx', string.format('%d', s[3]))
    redis.call('HINCRBYFLOAT', totals, prefix .. 'y', string.format('%.17g', s[4]))
    redis.call('HINCRBYFLOAT', totals, prefix .. 'yy', string.format('%.17g', s[5]))
    redis.call('HINCRBYFLOAT', totals, prefix .. 'xy', string.format('%.17g', s[6]))
  end
end
