-- One shadow's answer scored against the label or value its request's feedback gave
-- (the live answer: variant, prediction): into ``schema.paired_prefix`` cells for a
-- label, and for a numeric value into ``schema.squared_error_prefix`` sums of
-- d = (shadow - value)^2 - (live - value)^2. A reward is caused by the answer the
-- user saw, so a shadow's cannot be known: nothing is scored for it.
local function score_answer(shadow, answer, variant, prediction, metric, kind, value,
                            window_key, totals_key)
  local l, p, s = tonumber(value), tonumber(prediction), tonumber(answer)
  if kind == 'label' then
    local live_right = p ~= nil and p == l
    local shadow_right = s ~= nil and s == l
    local cell
    if live_right then cell = shadow_right and 'both' or 'live_only'
    else cell = shadow_right and 'shadow_only' or 'neither' end
    local f = shadow .. ':shadow:paired:' .. variant .. ':' .. metric .. ':' .. cell
    redis.call('HINCRBY', window_key, f, 1)
    redis.call('HINCRBY', totals_key, f, 1)
  elseif kind == 'value' and p ~= nil and s ~= nil and l ~= nil then
    local d = (s - l) * (s - l) - (p - l) * (p - l)
    if d == d and d ~= math.huge and d ~= -math.huge then
      local prefix = shadow .. ':shadow:sqerr:' .. variant .. ':' .. metric .. ':'
      for _, key in ipairs({window_key, totals_key}) do
        redis.call('HINCRBY', key, prefix .. 'n', 1)
        redis.call('HINCRBYFLOAT', key, prefix .. 'sum', string.format('%.17g', d))
        redis.call('HINCRBYFLOAT', key, prefix .. 'ss', string.format('%.17g', d * d))
      end
    end
  end
end
