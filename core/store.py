"""The one module that talks to Redis: scripts and the store API.

Key names and the encoding of what is stored live in ``core.schema``.

Every key of an experiment carries the experiment name as a Redis Cluster hash
tag (``abgate:{name}:...``), so an experiment's scripts and pipelines stay in
one slot. ``Store`` is the synchronous face (CLI, analysis, ramp controller);
``AsyncStore`` is the gateway's, used only off the request path (the recorder's
flusher, the config listener, feedback).

Redis Cluster (``cluster=True``, from ``ABGATE_REDIS_CLUSTER``): the one global
key (the experiments index set) and the config channel are used by single
commands only, never inside a script or pipeline with an experiment's keys;
PUBLISH is broadcast over the cluster bus, so the listener subscribes on any
one node and moves to the next one when that node fails.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

import orjson
import redis
import redis.asyncio as aredis
from redis.exceptions import LockNotOwnedError
from redis.lock import Lock

from core.errors import NotFound, RedisModeMismatch, RedisUnavailable
from core.schema import (
    UNSCORED,
    Keys,
    ServedRow,
    encode_served,
    epoch_record,
    unit_requests_prefix,
    unit_requests_state,
)

__all__ = [
    "CONFIG_CHANNEL",
    "EVENT_FIELDS",
    "AsyncStore",
    "ConfigRecord",
    "Event",
    "FeedbackItem",
    "FeedbackJoins",
    "FeedbackResult",
    "FlushBatch",
    "Keys",
    "Store",
]

CONFIG_CHANNEL = "abgate:config"
EXPERIMENTS_KEY = "abgate:experiments"
AUDIT_MAXLEN = 10_000


Client = redis.Redis | redis.RedisCluster
AsyncClient = aredis.Redis | aredis.RedisCluster


def _client(url: str, *, cluster: bool, **options: Any) -> Client:
    if cluster:
        return redis.RedisCluster.from_url(url, **options)
    return redis.Redis.from_url(url, **options)


def _async_client(url: str, *, cluster: bool, **options: Any) -> AsyncClient:
    if cluster:
        return aredis.RedisCluster.from_url(url, **options)
    return aredis.Redis.from_url(url, **options)


# Adds one batch of deltas to a window hash and the totals hash atomically, at
# most once: a flush part (batch id + window) already in the ``flushed`` set was
# applied before (a retry after a reply was lost), and is skipped. Integers go
# through HINCRBY, floats (they carry a '.' or an exponent) through
# HINCRBYFLOAT, so counts stay exact integers in Redis.
_FLUSH_SCRIPT = """
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
"""

# Appends one batch of raw events, once per (batch id, part) like the counters.
_EVENTS_SCRIPT = """
if redis.call('ZADD', KEYS[2], 'NX', ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'fields', ARGV[4], 'rows', ARGV[5])
return 1
"""

# How long a flush part's id is remembered: a write whose reply was lost is
# retried within seconds, so a few minutes covers it many times over.
FLUSHED_MEMORY_S = 600

# Per-unit sums. ``step_unit`` adds a unit's new counts (dx, dy) to its running counts
# (x0, y0) -> (x1, y1), kept as "x:y" in field ``state`` of the unit's hash ``key``
# (false: a unit of one request, with no hash) and refreshes its expiry;
# ``add_sums`` adds the change to the sums of its variant and epoch (a sums prefix,
# ``schema.unit_requests_prefix``/``unit_metric_prefix``): units += 1 when x0 = 0,
# Σx += x1 - x0, Σx² += x1² - x0², Σxy += x1·y1 - x0·y0, ...; ``write_sums`` adds
# them to the totals hash, once per prefix and script run rather than once per
# unit. Counts are integers (HINCRBY, printed with %d: tostring would give 1e+15).
_UNIT_SUMS = """
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
"""

_SCORE_ANSWER = """
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
"""

# Counts one feedback against the mapping of the request it belongs to
# (``schema.encode_served``: variant|version|epoch|prediction, the older
# variant|version|prediction, read as epoch 0, or with a unit
# variant|version|epoch/<unit bytes>|unit|prediction), into the stats fields
# ``schema.metric_prefix`` names, and for a unit into its per-unit sums
# (``step_unit``, ``add_sums``; the unit's hash is ``unit_prefix .. unit``, in the experiment's hash
# slot like every key of it). A label scores 1 when it equals the prediction as a
# number. Shared by the feedback script and the mapping writer, so a feedback
# counts the same whichever of the two comes second.
_COUNT_FEEDBACK = (
    _UNIT_SUMS
    + _SCORE_ANSWER
    + """
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
"""
)

# The per-unit request counts of one flush part (x = requests, y = errors), at most
# once like the counters (the part id in ``flushed``), sent as one JSON array of
# [state field, sums prefix, [[unit, requests, errors], ...]] per epoch and variant.
# Unit "" stands for requests that named no unit: each is a unit of one request (x = 1,
# y = its error), so they add to the sums directly. Unit hashes are ``ARGV[5] .. unit``,
# in the experiment's hash slot like all its keys.
# KEYS: totals, flushed. ARGV: now, part id, memory, unit TTL, unit key prefix, groups
_UNITS_SCRIPT = (
    _UNIT_SUMS
    + """
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
"""
)

# Adds a batch of request -> served-variant entries, sent as one JSON object:
# decoding it here costs Redis less than the client spends packing one HSET
# argument per request. Feedback that arrived before its mapping (parked by
# the feedback script) is counted here, in the same atomic step, and leaves
# the parking (feedback for a request its variant did not answer, ``UNSCORED``,
# leaves uncounted). Running it twice (a retry after a lost reply) counts nothing
# twice: a joined feedback is no longer parked. A parked feedback of an experiment
# with shadows (its 4th element '1') scores the shadow answers kept beside the mapping.
# KEYS: requests hash, pending hash, pending due set, joins hash, window, totals, windows
# ARGV: entries JSON, mapping TTL, window start, window TTL, unit key prefix, unit TTL
_REQUESTS_SCRIPT = (
    _COUNT_FEEDBACK
    + """
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
"""
)

# One feedback, atomically and idempotently. The request's claim records the
# feedback's token, what it said (metric, kind, value) and the answer it got:
# the same token again (the reply was lost and the call is retried) gets that
# answer again and changes nothing; the same feedback under another token (a
# client sending it again) gets it too, marked 'repeat'; any other feedback for
# the request is a 'duplicate'. Unclaimed, it is counted when the request's
# mapping is in Redis (or given, when the receiving process served the request
# and has not flushed it yet), else parked until the mapping arrives or the wait
# ends (or, with park=0, reported unknown and left unclaimed).
# KEYS: claim, pending hash, pending due set, joins hash, window, totals, windows,
#       then the request hashes of every hour a mapping may be kept in
# ARGV: request id, token, metric, kind, value, served or '', window start,
#       window TTL, claim TTL, expiry time, park (1/0), unit key prefix, unit TTL,
#       shadows (1/0: the experiment mirrors shadows; their answers are scored too),
#       which of the request hashes holds the mapping given (1-based; 0: unknown)
_FEEDBACK_SCRIPT = (
    _COUNT_FEEDBACK
    + """
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
"""
)

# Drops parked feedback whose wait is over, counting it; returns how many it
# dropped now, how many still wait, and the all-time parked, joined, expired.
# KEYS: pending hash, pending due set, joins hash. ARGV: now, at most this many
_EXPIRE_FEEDBACK_SCRIPT = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #ids > 0 then
  redis.call('HDEL', KEYS[1], unpack(ids))
  redis.call('ZREM', KEYS[2], unpack(ids))
  redis.call('HINCRBY', KEYS[3], 'expired', #ids)
end
local joins = redis.call('HMGET', KEYS[3], 'parked', 'joined', 'expired')
return {#ids, redis.call('ZCARD', KEYS[2]), tonumber(joins[1]) or 0, tonumber(joins[2]) or 0,
        tonumber(joins[3]) or 0}
"""

# Keeps a flush part's shadow answers beside their requests' mappings (field
# ``<id>|s`` of the same hash, so with the same expiry), at most once like the
# counters (the part id in ``flushed``). The answers of one request are merged
# into one JSON object, shadow -> prediction. A request whose feedback came first
# ('!' and what it said) has each answer scored now against that label, and counted
# in ``<shadow>:shadow:late`` (answered after its label: scored all the same).
# KEYS: requests hash, flushed, window, totals, windows
# ARGV: now, part id, memory, entries JSON {id: {shadow: prediction}}, mapping TTL,
#       window start, window TTL
_SHADOW_ANSWERS_SCRIPT = (
    _SCORE_ANSWER
    + """
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
"""
)

# Stores a config with the next version number, opens the epoch of that
# version (its routing and start time) and audits it, atomically: no gateway
# can route a version whose epoch is not recorded.
_PUT_CONFIG_SCRIPT = """
local version = redis.call('INCR', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[4], version, ARGV[8])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], '*',
  'ts', ARGV[2], 'actor', ARGV[3], 'action', ARGV[4], 'reason', ARGV[5],
  'evidence', ARGV[6], 'version', version)
return version
"""


# Compare-and-act on a lock value: only its owner may extend or release it.
@dataclass(frozen=True)
class ConfigRecord:
    """A stored experiment config with its version and run state."""

    name: str
    version: int
    config: dict[str, Any]
    paused: bool = False
    updated_at: str = ""
    actor: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "version": self.version,
            "paused": self.paused,
            "updated_at": self.updated_at,
            "actor": self.actor,
            "config": self.config,
        }


# One raw event: (ts, request id, variant, model version, ok, latency ms,
# fallback, error or None). A batch is stored as columns + rows, so neither the
# gateway nor the stream repeats the field names per request.
EVENT_FIELDS = ("ts", "rid", "variant", "version", "ok", "latency_ms", "fallback", "error")
Event = tuple[float, str, str, str, bool, float, bool, str | None]


@dataclass(frozen=True)
class FeedbackItem:
    """One feedback as received, ready for the feedback script.

    ``token`` is drawn once per received feedback and becomes the value of its
    request's claim: a retried write recognises its own claim (``again``)
    where another feedback's claim makes it a duplicate.
    """

    request_id: str
    token: str
    metric: str
    kind: str  # label, reward or value
    value: float
    served: str  # the mapping when the receiving process knows it, else ""
    ts: float
    window: int  # start of the stats window it is counted in
    # The experiment mirrors shadows: their answers kept beside the mapping are scored too.
    shadows: bool = False
    # With ``served``: the hour whose request hash the mapping goes to (its shadow
    # answers are looked up, and marked scored, there).
    hour: int | None = None


@dataclass(frozen=True)
class FeedbackResult:
    """What the feedback script did: ``counted`` (with the mapping and the amount),
    ``pending`` (parked until its mapping arrives), ``unscored`` (its request was not
    answered by its variant), ``duplicate`` (another feedback claimed the request),
    ``unknown`` (not parked), ``malformed``, or ``again`` (this very feedback was
    applied under a claim that kept no answer).

    A call retried with the same token gets the answer of its first run; the same
    feedback sent again under another token gets that answer with ``repeated``: in
    both cases nothing was counted this time.
    """

    status: str
    served: str = ""
    amount: float = 0.0
    repeated: bool = False


@dataclass(frozen=True)
class FeedbackJoins:
    """Parked feedback of one experiment, as Redis holds it (every replica's)."""

    expired_now: int  # expired by the sweep that read this
    pending: int
    parked: int  # all-time
    joined: int  # all-time
    expired: int  # all-time


@dataclass
class FlushBatch:
    """What one flush writes for one experiment."""

    experiment: str
    deltas: dict[int, dict[str, float]]  # window start -> field -> amount
    events: list[Event]
    # hour -> request id -> what served it (None or an ``Unanswered`` prediction: not
    # its variant, schema.UNSCORED)
    requests: dict[int, dict[str, ServedRow | None]]
    # Written again unchanged after a failed write: Redis applies each part once.
    batch_id: str = field(default_factory=lambda: os.urandom(8).hex())
    # Feedback received while Redis was unreachable; each is applied once (its token).
    feedback: list[FeedbackItem] = field(default_factory=list)
    # The stats window feedback joined by these mappings counts in (when taken).
    join_window: int = 0
    # (epoch, variant) -> unit -> [requests, errors] since the last flush, for experiments
    # whose unit is not the request; unit "" sums the requests that named no unit.
    units: dict[tuple[int, str], dict[str, list[int]]] = field(default_factory=dict)
    # hour -> request id -> shadow -> its prediction (as text), kept beside the mappings.
    shadow_answers: dict[int, dict[str, dict[str, str]]] = field(default_factory=dict)


_EVENT_FIELDS_JSON = orjson.dumps(EVENT_FIELDS)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _decode_config(name: str, raw: bytes | None, version: bytes | None) -> ConfigRecord | None:
    if raw is None:
        return None
    body = orjson.loads(raw)
    return ConfigRecord(
        name=name,
        version=int(version or 0),
        config=body["config"],
        paused=bool(body.get("paused", False)),
        updated_at=str(body.get("updated_at", "")),
        actor=str(body.get("actor", "")),
    )


def _config_args(
    config: dict[str, Any], *, paused: bool, actor: str, action: str, reason: str, evidence: Any
) -> list[Any]:
    now = _now_iso()
    body = orjson.dumps({"config": config, "paused": paused, "updated_at": now, "actor": actor})
    epoch = epoch_record(config, paused=paused, started_at=time.time())
    return [body, now, actor, action, reason, json.dumps(evidence, default=str), AUDIT_MAXLEN,
            epoch]  # fmt: skip


def _delta_args(delta: dict[str, float]) -> list[Any]:
    args: list[Any] = []
    for name, amount in delta.items():
        args.append(name)
        args.append(str(amount) if isinstance(amount, int) else repr(float(amount)))
    return args


# Units per script call: one call's Lua holds Redis for its run, so a flush of many
# units is cut into parts of this many (each applied at most once on its own).
UNITS_PER_PART = 500


def _unit_parts(units: dict[tuple[int, str], dict[str, list[int]]]) -> Iterable[bytes]:
    """The per-unit counts of a flush as script parts (``_UNITS_SCRIPT``'s JSON groups),
    each of at most ``UNITS_PER_PART`` units."""
    for (epoch, variant), counts in units.items():
        rows = [(unit, c[0], c[1]) for unit, c in counts.items()]
        state, prefix = unit_requests_state(epoch, variant), unit_requests_prefix(epoch, variant)
        for start in range(0, len(rows), UNITS_PER_PART):
            yield orjson.dumps([(state, prefix, rows[start : start + UNITS_PER_PART])])


def _hour(ts: float) -> int:
    return int(ts // 3600)


def _decode_audit(entries: Iterable[tuple[bytes, dict[bytes, bytes]]]) -> list[dict[str, Any]]:
    out = []
    for entry_id, fields in entries:
        row: dict[str, Any] = {k.decode(): v.decode() for k, v in fields.items()}
        row["id"] = entry_id.decode()
        with contextlib.suppress(ValueError):
            row["evidence"] = json.loads(row.get("evidence", "null"))
        out.append(row)
    return out


_P = ParamSpec("_P")
_T = TypeVar("_T")


def _unavailable_as(
    what: str,
) -> Callable[[Callable[_P, _T]], Callable[_P, _T]]:
    """A sync store call whose Redis or socket failure raises RedisUnavailable("<what> ...").

    Callers (the CLI, the ramp) then meet one error for "Redis is away", never a
    client library's own exception.
    """

    def wrap(method: Callable[_P, _T]) -> Callable[_P, _T]:
        @functools.wraps(method)
        def call(*args: _P.args, **kwargs: _P.kwargs) -> _T:
            try:
                return method(*args, **kwargs)
            except (redis.RedisError, OSError) as exc:
                raise RedisUnavailable(f"{what}: {exc}") from exc

        return call

    return wrap


class Store:
    """Synchronous access for the CLI, analysis and the ramp controller."""

    def __init__(self, url: str, *, cluster: bool = False, window_ttl_s: int = 30 * 86400) -> None:
        self.url = url
        self.cluster = cluster
        self.window_ttl_s = window_ttl_s
        self.client = _client(url, cluster=cluster, socket_timeout=5, socket_connect_timeout=2)
        self._put_config = self.client.register_script(_PUT_CONFIG_SCRIPT)

    def ping(self) -> None:
        """Raise RedisUnavailable unless Redis answers in the mode it was configured for."""
        try:
            self.client.ping()
            # A cluster node answers a single-node client until a key lives on
            # another node: say so now, not with a MOVED error in the middle of a ramp.
            misconfigured = not self.cluster and self.client.info("cluster").get("cluster_enabled")
        except redis.RedisError as exc:
            raise RedisUnavailable(f"Redis at {self.url} does not answer: {exc}") from exc
        if misconfigured:
            raise RedisModeMismatch(
                f"Redis at {self.url} is a Redis Cluster node: set ABGATE_REDIS_CLUSTER=1"
            )

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()

    def put_config(
        self,
        name: str,
        config: dict[str, Any],
        *,
        actor: str,
        action: str,
        reason: str = "",
        evidence: Any = None,
        paused: bool = False,
    ) -> int:
        """Store a validated config as the next version, audit it, tell every gateway."""
        keys = Keys(name)
        try:
            version = int(
                self._put_config(
                    keys=[keys.config_version, keys.config, keys.audit, keys.epochs],
                    args=_config_args(
                        config, paused=paused, actor=actor, action=action, reason=reason,
                        evidence=evidence,
                    ),
                )
            )  # fmt: skip
            self.client.sadd(EXPERIMENTS_KEY, name)
            self.client.publish(CONFIG_CHANNEL, f"{name} {version}")
        except redis.RedisError as exc:
            raise RedisUnavailable(f"cannot store config of {name}: {exc}") from exc
        return version

    def get_config(self, name: str) -> ConfigRecord:
        """The current config of an experiment."""
        keys = Keys(name)
        try:
            raw, version = self.client.mget(keys.config, keys.config_version)
        except redis.RedisError as exc:
            raise RedisUnavailable(f"cannot read config of {name}: {exc}") from exc
        record = _decode_config(name, raw, version)
        if record is None:
            raise NotFound(f"no experiment named {name!r} (apply its config first)")
        return record

    def experiments(self) -> list[str]:
        """Names of every stored experiment."""
        try:
            return sorted(m.decode() for m in self.client.smembers(EXPERIMENTS_KEY))
        except redis.RedisError as exc:
            raise RedisUnavailable(f"cannot list experiments: {exc}") from exc

    @_unavailable_as("cannot read the statistics")
    def totals(self, name: str) -> dict[bytes, bytes]:
        """The all-time stats hash of an experiment."""
        return self.client.hgetall(Keys(name).totals)

    def recorded(self, name: str) -> tuple[dict[bytes, bytes], dict[bytes, bytes]]:
        """The all-time stats hash and the epoch records, read together."""
        keys = Keys(name)
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.hgetall(keys.totals)
            pipe.hgetall(keys.epochs)
            totals, epochs = pipe.execute()
        except redis.RedisError as exc:
            raise RedisUnavailable(f"cannot read the statistics of {name}: {exc}") from exc
        return totals, epochs

    def epochs(self, name: str) -> dict[bytes, bytes]:
        """The epoch records of an experiment: config version -> routing and start (JSON)."""
        try:
            return self.client.hgetall(Keys(name).epochs)
        except redis.RedisError as exc:
            raise RedisUnavailable(f"cannot read the epochs of {name}: {exc}") from exc

    @_unavailable_as("cannot read the windows")
    def windows(self, name: str) -> dict[int, dict[bytes, bytes]]:
        """Every recorded window's stats hash, oldest first."""
        keys = Keys(name)
        starts = [int(w) for w in self.client.zrange(keys.windows, 0, -1)]
        pipe = self.client.pipeline(transaction=False)
        for start in starts:
            pipe.hgetall(keys.window(start))
        return dict(zip(starts, pipe.execute(), strict=True))

    def put_drift_reference(self, name: str, references: dict[str, Any]) -> None:
        """Store the training references (model version -> reference) drift is checked against."""
        try:
            self.client.set(Keys(name).drift_reference, orjson.dumps(references))
        except redis.RedisError as exc:
            raise RedisUnavailable(f"cannot store the drift reference of {name}: {exc}") from exc

    @_unavailable_as("cannot read the drift reference")
    def drift_reference(self, name: str) -> dict[str, Any]:
        """The stored drift references of an experiment (empty when none was stored)."""
        raw = self.client.get(Keys(name).drift_reference)
        return {} if raw is None else dict(orjson.loads(raw))

    def windows_since(self, name: str, since: float) -> list[dict[bytes, bytes]]:
        """Stats hashes of the windows that started at ``since`` or later, oldest first."""
        keys = Keys(name)
        try:
            starts = [int(w) for w in self.client.zrangebyscore(keys.windows, since, "+inf")]
            pipe = self.client.pipeline(transaction=False)
            for start in starts:
                pipe.hgetall(keys.window(start))
            return list(pipe.execute())
        except redis.RedisError as exc:
            raise RedisUnavailable(f"cannot read the stats of {name}: {exc}") from exc

    @_unavailable_as("cannot read the events")
    def events(self, name: str, count: int = 100) -> list[dict[str, Any]]:
        """The most recent raw events (newest last)."""
        batches = self.client.xrevrange(Keys(name).events, count=count)
        out: list[dict[str, Any]] = []
        for _, fields in reversed(batches):
            names = orjson.loads(fields[b"fields"])
            out.extend(dict(zip(names, row, strict=True)) for row in orjson.loads(fields[b"rows"]))
        return out[-count:]

    @_unavailable_as("cannot read the audit log")
    def audit(self, name: str, count: int = 100) -> list[dict[str, Any]]:
        """The audit log of an experiment, oldest first."""
        entries = self.client.xrevrange(Keys(name).audit, count=count)
        return _decode_audit(reversed(entries))

    @_unavailable_as("cannot write the audit log")
    def add_audit(
        self, name: str, *, actor: str, action: str, reason: str = "", evidence: Any = None
    ) -> None:
        """An audit entry that is not a config change (a ramp decision that holds, say)."""
        self.client.xadd(
            Keys(name).audit,
            {"ts": _now_iso(), "actor": actor, "action": action, "reason": reason,
             "evidence": json.dumps(evidence, default=str), "version": ""},
            maxlen=AUDIT_MAXLEN,
            approximate=True,
        )  # fmt: skip

    # --- ramp controller state ---------------------------------------------------

    @_unavailable_as("cannot read the ramp state")
    def ramp_state(self, name: str) -> dict[str, Any] | None:
        """The stored ramp state of an experiment, if any."""
        raw = self.client.get(Keys(name).ramp)
        return None if raw is None else dict(orjson.loads(raw))

    @_unavailable_as("cannot store the ramp state")
    def save_ramp_state(self, name: str, state: dict[str, Any]) -> None:
        """Store the ramp state (it survives the controller)."""
        self.client.set(Keys(name).ramp, orjson.dumps(state))

    @_unavailable_as("cannot clear the ramp state")
    def clear_ramp_state(self, name: str) -> None:
        """Forget a finished ramp."""
        self.client.delete(Keys(name).ramp)

    def _ramp_lock(self, name: str, owner: str, ttl_s: float) -> Lock:
        # redis-py's Lock (token compared and the key changed in one script); the
        # owner string is its token, so any Store can refresh or release by owner.
        lock = self.client.lock(
            Keys(name).ramp_lock, timeout=ttl_s, blocking=False, thread_local=False
        )
        lock.local.token = owner.encode()
        return lock

    @_unavailable_as("cannot take the ramp lock")
    def acquire_ramp_lock(self, name: str, owner: str, ttl_s: float) -> str | None:
        """Take the ramp lock; None when taken, else the owner now holding it."""
        return owner if self._ramp_lock(name, owner, ttl_s).acquire(token=owner) else None

    @_unavailable_as("cannot read the ramp lock")
    def ramp_lock_owner(self, name: str) -> str | None:
        """Who holds the ramp lock, if anyone."""
        raw = self.client.get(Keys(name).ramp_lock)
        return None if raw is None else str(raw.decode())

    @_unavailable_as("cannot refresh the ramp lock")
    def refresh_ramp_lock(self, name: str, owner: str, ttl_s: float) -> bool:
        """Extend the lock to ``ttl_s`` from now if ``owner`` still holds it."""
        try:
            self._ramp_lock(name, owner, ttl_s).reacquire()
        except LockNotOwnedError:
            return False
        return True

    @_unavailable_as("cannot release the ramp lock")
    def release_ramp_lock(self, name: str, owner: str) -> None:
        """Release the lock if ``owner`` holds it."""
        with contextlib.suppress(LockNotOwnedError):
            self._ramp_lock(name, owner, 1.0).release()


def _feedback_result(answer: Any) -> FeedbackResult:
    parts = [part.decode() if isinstance(part, bytes) else str(part) for part in answer]
    return FeedbackResult(
        parts[0],
        parts[1] if len(parts) > 1 else "",
        float(parts[2]) if len(parts) > 2 else 0.0,
        repeated=len(parts) > 3 and parts[3] == "repeat",
    )


class AsyncStore:
    """The gateway's access, used off the request path."""

    def __init__(
        self,
        url: str,
        *,
        window_ttl_s: int = 30 * 86400,
        events_maxlen: int = 10_000,
        request_ttl_s: int = 86400,
        unit_ttl_s: int = 30 * 86400,
        cluster: bool = False,
    ) -> None:
        self.url = url
        self.cluster = cluster
        self.window_ttl_s = window_ttl_s
        # How long a unit's running counts outlive its last request or outcome.
        self.unit_ttl_s = unit_ttl_s
        self.events_maxlen = events_maxlen
        # How long a mapping is kept, and so how long feedback waits for one.
        self.request_ttl_s = request_ttl_s
        self._options: dict[str, Any] = {
            "socket_timeout": 2, "socket_connect_timeout": 1, "health_check_interval": 5,
        }  # fmt: skip
        self.client = _async_client(url, cluster=cluster, **self._options)
        self._listen_on = 0  # which cluster node the config listener tries next
        self._put_config = self.client.register_script(_PUT_CONFIG_SCRIPT)

    async def close(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()

    async def ping(self) -> bool:
        """Whether Redis answers now."""
        try:
            return bool(await self.client.ping())
        except (redis.RedisError, OSError):
            return False

    async def write(self, batches: list[FlushBatch]) -> list[FeedbackResult]:
        """Write one flush in a single round trip; raise RedisUnavailable on failure.

        Returns what became of each batch's feedback, in order.
        """
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for batch in batches:
                    self._queue(pipe, batch)
                # Feedback last, so that one the writing process served itself finds
                # its mapping already written (it carries it anyway).
                for batch in batches:
                    for item in batch.feedback:
                        self._queue_feedback(pipe, batch.experiment, item, park=True)
                answers = await pipe.execute()
        except (redis.RedisError, OSError) as exc:
            raise RedisUnavailable(f"flush failed: {exc}") from exc
        n = sum(len(batch.feedback) for batch in batches)
        return [_feedback_result(answer) for answer in answers[len(answers) - n :]] if n else []

    def _queue(self, pipe: Any, batch: FlushBatch) -> None:
        keys = Keys(batch.experiment)
        now = time.time()
        for window, delta in batch.deltas.items():
            if delta:
                # EVAL, not EVALSHA: a pipeline cannot recover from NOSCRIPT (say, on a
                # cluster node that never saw the script) without replaying the whole
                # batch and counting it twice; the server caches the compiled script.
                pipe.eval(
                    _FLUSH_SCRIPT,
                    4,
                    keys.window(window),
                    keys.totals,
                    keys.windows,
                    keys.flushed,
                    window,
                    self.window_ttl_s,
                    now,
                    f"{batch.batch_id}:{window}",
                    FLUSHED_MEMORY_S,
                    *_delta_args(delta),
                )
        if batch.events:
            pipe.eval(
                _EVENTS_SCRIPT,
                2,
                keys.events,
                keys.flushed,
                now,
                f"{batch.batch_id}:events",
                self.events_maxlen,
                _EVENT_FIELDS_JSON,
                orjson.dumps(batch.events),
            )
        if batch.units:
            self._queue_units(pipe, keys, batch, now)
        window = batch.join_window or max(batch.deltas, default=0) or int(now // 60) * 60
        # Before the mappings: a parked feedback joined by a mapping of this flush then
        # finds the shadow answers of the same flush too.
        for hour, answers in batch.shadow_answers.items():
            pipe.eval(
                _SHADOW_ANSWERS_SCRIPT,
                5,
                keys.requests(hour),
                keys.flushed,
                keys.window(window),
                keys.totals,
                keys.windows,
                now,
                f"{batch.batch_id}:shadows:{hour}",
                FLUSHED_MEMORY_S,
                orjson.dumps(answers),
                self.request_ttl_s + 3600,
                window,
                self.window_ttl_s,
            )
        for hour, mapping in batch.requests.items():
            pipe.eval(
                _REQUESTS_SCRIPT,
                7,
                keys.requests(hour),
                keys.pending_feedback,
                keys.pending_feedback_due,
                keys.feedback_joins,
                keys.window(window),
                keys.totals,
                keys.windows,
                orjson.dumps(
                    {
                        rid: UNSCORED if row is None else encode_served(*row)
                        for rid, row in mapping.items()
                    }
                ),
                self.request_ttl_s + 3600,
                window,
                self.window_ttl_s,
                keys.unit_prefix,
                self.unit_ttl_s,
            )

    def _queue_units(self, pipe: Any, keys: Keys, batch: FlushBatch, now: float) -> None:
        for part, groups in enumerate(_unit_parts(batch.units)):
            pipe.eval(
                _UNITS_SCRIPT,
                2,
                keys.totals,
                keys.flushed,
                now,
                f"{batch.batch_id}:units:{part}",
                FLUSHED_MEMORY_S,
                self.unit_ttl_s,
                keys.unit_prefix,
                groups,
            )

    def _queue_feedback(self, pipe: Any, name: str, item: FeedbackItem, *, park: bool) -> None:
        keys = Keys(name)
        # Every hour a mapping may still be kept in, and the next one: a replica
        # whose clock runs ahead may have filed it there already.
        hours = range(_hour(item.ts) + 1, _hour(item.ts - self.request_ttl_s) - 1, -1)
        at = hours.index(item.hour) + 1 if item.served and item.hour in hours else 0
        pipe.eval(
            _FEEDBACK_SCRIPT,
            7 + len(hours),
            keys.feedback_claim(item.request_id),
            keys.pending_feedback,
            keys.pending_feedback_due,
            keys.feedback_joins,
            keys.window(item.window),
            keys.totals,
            keys.windows,
            *(keys.requests(hour) for hour in hours),
            item.request_id,
            item.token,
            item.metric,
            item.kind,
            repr(float(item.value)),
            item.served,
            item.window,
            self.window_ttl_s,
            self.request_ttl_s + 3600,
            item.ts + self.request_ttl_s,
            1 if park else 0,
            keys.unit_prefix,
            self.unit_ttl_s,
            1 if item.shadows else 0,
            at,
        )

    async def feedback(self, name: str, item: FeedbackItem, *, park: bool) -> FeedbackResult:
        """Count, park or refuse one feedback (``_FEEDBACK_SCRIPT``); one round trip.

        Raises RedisUnavailable when Redis does not answer: the script may then
        have run or not, and the same item (same token) may be sent again.
        """
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                self._queue_feedback(pipe, name, item, park=park)
                (answer,) = await pipe.execute()
        except (redis.RedisError, OSError) as exc:
            raise RedisUnavailable(f"feedback store unavailable: {exc}") from exc
        return _feedback_result(answer)

    async def expire_feedback(self, name: str, now: float, limit: int = 1000) -> FeedbackJoins:
        """Drop (and count) parked feedback of ``name`` whose wait ended before ``now``."""
        keys = Keys(name)
        try:
            answer = await self.client.eval(
                _EXPIRE_FEEDBACK_SCRIPT, 3, keys.pending_feedback, keys.pending_feedback_due,
                keys.feedback_joins, now, limit,
            )  # fmt: skip
        except (redis.RedisError, OSError) as exc:
            raise RedisUnavailable(f"cannot expire the parked feedback of {name}: {exc}") from exc
        return FeedbackJoins(*(int(x) for x in answer))

    async def get_config(self, name: str) -> ConfigRecord | None:
        """The stored config of ``name``, or None."""
        keys = Keys(name)
        raw, version = await self.client.mget(keys.config, keys.config_version)
        return _decode_config(name, raw, version)

    async def experiments(self) -> list[str]:
        """Names of every stored experiment."""
        return sorted(m.decode() for m in await self.client.smembers(EXPERIMENTS_KEY))

    async def routing_extras(self, name: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """What a gateway keeps next to a config: drift references and the ramp state."""
        keys = Keys(name)
        reference, ramp = await self.client.mget(keys.drift_reference, keys.ramp)
        return (
            {} if reference is None else dict(orjson.loads(reference)),
            None if ramp is None else dict(orjson.loads(ramp)),
        )

    async def windows_since(self, name: str, since: float) -> list[dict[bytes, bytes]]:
        """Async twin of ``Store.windows_since`` (the admin API's drift view)."""
        keys = Keys(name)
        try:
            starts = [int(w) for w in await self.client.zrangebyscore(keys.windows, since, "+inf")]
            async with self.client.pipeline(transaction=False) as pipe:
                for start in starts:
                    pipe.hgetall(keys.window(start))
                return list(await pipe.execute())
        except (redis.RedisError, OSError) as exc:
            raise RedisUnavailable(f"cannot read the stats of {name}: {exc}") from exc

    async def drift_reference(self, name: str) -> dict[str, Any]:
        """Async twin of ``Store.drift_reference``."""
        try:
            raw = await self.client.get(Keys(name).drift_reference)
        except (redis.RedisError, OSError) as exc:
            raise RedisUnavailable(f"cannot read the drift reference of {name}: {exc}") from exc
        return {} if raw is None else dict(orjson.loads(raw))

    async def put_config(
        self, name: str, config: dict[str, Any], *, actor: str, action: str, reason: str = "",
        evidence: Any = None, paused: bool = False,
    ) -> int:  # fmt: skip
        """Async twin of ``Store.put_config`` for the admin API."""
        keys = Keys(name)
        try:
            version = int(
                await self._put_config(
                    keys=[keys.config_version, keys.config, keys.audit, keys.epochs],
                    args=_config_args(
                        config, paused=paused, actor=actor, action=action, reason=reason,
                        evidence=evidence,
                    ),
                )
            )  # fmt: skip
            await self.client.sadd(EXPERIMENTS_KEY, name)
            await self.client.publish(CONFIG_CHANNEL, f"{name} {version}")
        except (redis.RedisError, OSError) as exc:
            raise RedisUnavailable(f"cannot store config of {name}: {exc}") from exc
        return version

    async def lookup_request(self, name: str, request_id: str, now: float) -> str | None:
        """The mapping a request was served with (``schema.decode_served``), if still kept."""
        keys = Keys(name)
        hours = range(_hour(now), _hour(now - self.request_ttl_s) - 1, -1)
        async with self.client.pipeline(transaction=False) as pipe:
            for hour in hours:
                pipe.hget(keys.requests(hour), request_id)
            answers = await pipe.execute()
        for found in answers:
            if found is not None:
                return str(found.decode())
        return None

    async def claim_feedback(self, name: str, request_id: str) -> bool:
        """True the first time feedback for ``request_id`` is claimed, False after."""
        # One key per request id, expiring with the request mapping: one atomic
        # command decides, whichever gateway replica gets the duplicate.
        claimed = await self.client.set(
            Keys(name).feedback_claim(request_id), 1, nx=True, ex=self.request_ttl_s
        )
        return bool(claimed)

    async def audit(self, name: str, count: int = 100) -> list[dict[str, Any]]:
        """The audit log of an experiment, oldest first."""
        try:
            entries = await self.client.xrevrange(Keys(name).audit, count=count)
        except (redis.RedisError, OSError) as exc:
            raise RedisUnavailable(f"cannot read the audit log of {name}: {exc}") from exc
        return _decode_audit(reversed(entries))

    async def recorded(
        self, name: str, last: int
    ) -> tuple[dict[bytes, bytes], dict[int, dict[bytes, bytes]], int | None, dict[bytes, bytes]]:
        """The totals hash, the ``last`` most recent window hashes (oldest first), the
        start of the first window ever kept and the epoch records, in one round trip per
        part.

        For the live dashboard: its charts need only recent windows, but the time
        since the first one sets the traffic rates of the time-to-decision estimate.
        """
        keys = Keys(name)
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hgetall(keys.totals)
                pipe.zrange(keys.windows, -last, -1)
                pipe.zrange(keys.windows, 0, 0)
                pipe.hgetall(keys.epochs)
                totals, recent, first, epochs = await pipe.execute()
            starts = [int(w) for w in recent]
            async with self.client.pipeline(transaction=False) as pipe:
                for start in starts:
                    pipe.hgetall(keys.window(start))
                hashes = await pipe.execute()
        except (redis.RedisError, OSError) as exc:
            raise RedisUnavailable(f"cannot read the statistics of {name}: {exc}") from exc
        windows = dict(zip(starts, hashes, strict=True))
        return totals, windows, int(first[0]) if first else None, epochs

    async def ramp_state(self, name: str) -> dict[str, Any] | None:
        """Async twin of ``Store.ramp_state`` for the dashboard."""
        try:
            raw = await self.client.get(Keys(name).ramp)
        except (redis.RedisError, OSError) as exc:
            raise RedisUnavailable(f"cannot read the ramp state of {name}: {exc}") from exc
        return None if raw is None else dict(orjson.loads(raw))

    async def config_updates(self) -> AsyncIterator[tuple[str, int]]:
        """Yield (experiment, version) for every config change published."""
        listener = await self._listener()
        pubsub = listener.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(CONFIG_CHANNEL)
            while True:
                message = await pubsub.get_message(timeout=1.0)
                if message is None:
                    yield ("", 0)  # heartbeat: lets the caller notice shutdown
                    continue
                name, _, version = message["data"].decode().partition(" ")
                yield (name, int(version or 0))
        finally:
            await pubsub.aclose()
            if listener is not self.client:
                await listener.aclose()

    async def _listener(self) -> aredis.Redis:
        """The connection to subscribe on: the client itself, or one cluster node.

        A plain connection to one node is enough in a cluster (PUBLISH reaches
        every node) and works with every redis-py version. Each call takes the
        next node, so a listener whose node failed comes back on another one.
        """
        if not isinstance(self.client, aredis.RedisCluster):
            return self.client
        await self.client.initialize()
        nodes = sorted(self.client.get_nodes(), key=lambda node: node.name)
        node = nodes[self._listen_on % len(nodes)]
        self._listen_on += 1
        return aredis.Redis(host=node.host, port=node.port, **self._options)

    @staticmethod
    def now() -> float:
        """Wall clock used for windows and request hours."""
        return time.time()
