-- Library (after unit_sums.lua and score_answer.lua): ``count_feedback`` counts one
-- feedback against the mapping of the request it belongs to (``schema.encode_served``:
-- variant|version|epoch|prediction, the older variant|version|prediction, read as epoch
-- 0, or with a unit variant|version|epoch/<unit bytes>|unit|prediction), into the stats
-- fields ``schema.metric_prefix`` names, and for a unit into its per-unit sums
-- (``step_unit``, ``add_sums``; the unit's hash is ``unit_prefix .. unit``, in the
-- experiment's hash slot like every key of it). A label scores 1 when it equals the
-- prediction as a number. Shared by the feedback script and the mapping writer, so a
-- feedback counts the same whichever of the two comes second.
-- The shadows' answers to request ``rid`` (``schema.shadow_answers_field`` in ``hash``,
-- the hash its mapping is kept in), each scored against the same label as the live
-- answer. The field then holds '!' and what the feedback said, so that an answer
-- written after it (a shadow slower than the label) is scored on arrival, once,
-- by the answers script: the order of answer and feedback does not matter.
local function score_shadows(hash, rid, ttl, variant, prediction, metric, kind, value,
                             window_key, totals_key)
  local field = rid .. '|s'
  local held = redis.call('HGET', hash, field)
  if held and string.sub(held, 1, 1) == '!' then return end  -- scored already
  redis.call('HSET', hash, field,
             '!' .. cjson.encode({variant, prediction, metric, kind, value}))
  if redis.call('TTL', hash) < 0 then redis.call('EXPIRE', hash, ttl) end
  if not held then return end
  local ok, answers = pcall(cjson.decode, held)
  if not ok or type(answers) ~= 'table' then return end
  for shadow, answer in pairs(answers) do
    score_answer(shadow, answer, variant, prediction, metric, kind, value, window_key,
                 totals_key)
  end
end

-- ``shadow_hash`` (or false): the hash holding the request's mapping when its
-- experiment mirrors shadows, so that their answers are scored by the same feedback.
local function count_feedback(served, metric, kind, value, window_key, totals_key,
                              windows_key, window, window_ttl, unit_prefix, unit_ttl,
                              rid, shadow_hash, request_ttl)
  local variant, version, rest = string.match(served, '^([^|]*)|([^|]*)|(.*)$')
  if not variant then return nil end
  local unit
  local epoch, size, after = string.match(rest, '^(%d+)/(%d+)|(.*)$')
  local prediction
  if epoch then
    size = tonumber(size)
    unit, prediction = string.sub(after, 1, size), string.sub(after, size + 2)
  else
    epoch, prediction = string.match(rest, '^(%d+)|(.*)$')
    if not epoch then epoch, prediction = '0', rest end
  end
  local amount
  if kind == 'label' then
    local p, l = tonumber(prediction), tonumber(value)
    amount = (p ~= nil and p == l) and 1 or 0
  else
    amount = tonumber(value) or 0
  end
  local prefix = epoch .. '|' .. variant .. ':metric:' .. metric .. ':'
  local sum = string.format('%.17g', amount)
  local ss = string.format('%.17g', amount * amount)
  for _, key in ipairs({window_key, totals_key}) do
    redis.call('HINCRBY', key, prefix .. 'n', 1)
    redis.call('HINCRBYFLOAT', key, prefix .. 'sum', sum)
    redis.call('HINCRBYFLOAT', key, prefix .. 'ss', ss)
  end
  if unit then
    local ev = epoch .. '|' .. variant
    local x0, y0, x1, y1 = step_unit(unit ~= '' and (unit_prefix .. unit),
                                     ev .. ':m:' .. metric, 1, tonumber(sum), unit_ttl)
    local sums = {}
    add_sums(sums, ev .. ':unit:metric:' .. metric .. ':', x0, y0, x1, y1)
    write_sums(totals_key, sums)
  end
  if shadow_hash then
    score_shadows(shadow_hash, rid, request_ttl, variant, prediction, metric, kind, value,
                  window_key, totals_key)
  end
  redis.call('ZADD', windows_key, window, window)
  if window_ttl > 0 then redis.call('EXPIRE', window_key, window_ttl) end
  return sum
end
