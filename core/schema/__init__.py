"""What abgate keeps in Redis: key names, stats-hash fields, request mappings, epochs.

The one owner of the encoding. The gateway's aggregator names its fields
with the builders here, the store's scripts write them unchanged, and the
readers here turn them back into ``analysis.sufficient`` statistics, so that
totals, windows, epochs and baselines are plain ``+`` and ``-``. Pure: no
Redis client, no I/O (``core.store`` does the talking).

One module per part of the layout:

    keys     every key name, hash-tagged with the experiment's name
    fields   the fields of a stats hash (counters, latency, metrics, per-unit sums,
             shadows' paired outcomes) and reading their raw values
    stats    a stats hash read back as statistics per epoch and variant (``StatsHash``)
    drift    the drift bins of a stats hash
    served   the request -> served mapping feedback is joined on, and shadow answers
    epochs   the record each config version opens, and reading epochs back

Everything public is importable from ``core.schema`` itself.
"""

from __future__ import annotations

from core.schema.drift import (
    drift_class_field,
    drift_feature_field,
    drift_score_field,
    parse_drift_fields,
)
from core.schema.epochs import decode_epochs, epoch_record, routed_weights
from core.schema.fields import (
    COUNTER_FIELDS,
    LATENCY_BOUNDS_MS,
    LATENCY_FIELDS,
    PAIRED_CELLS,
    UNIT_SUM_FIELDS,
    latency_bucket,
    latency_hist_field,
    metric_prefix,
    paired_prefix,
    shadow_field,
    squared_error_prefix,
    unit_metric_prefix,
    unit_metric_state,
    unit_requests_prefix,
    unit_requests_state,
    variant_prefix,
    window_start,
)
from core.schema.keys import CONFIG_CHANNEL, EXPERIMENTS_KEY, Keys
from core.schema.served import (
    SHADOW_ANSWERS_SUFFIX,
    SHADOW_SCORED,
    UNSCORED,
    Served,
    ServedRow,
    Unanswered,
    decode_served,
    encode_served,
    shadow_answers_field,
)
from core.schema.stats import ShadowStats, StatsHash, decode_stats, parse_outcome_fields, sum_stats

__all__ = [
    "CONFIG_CHANNEL",
    "COUNTER_FIELDS",
    "EXPERIMENTS_KEY",
    "LATENCY_BOUNDS_MS",
    "LATENCY_FIELDS",
    "PAIRED_CELLS",
    "SHADOW_ANSWERS_SUFFIX",
    "SHADOW_SCORED",
    "UNIT_SUM_FIELDS",
    "UNSCORED",
    "Keys",
    "Served",
    "ServedRow",
    "ShadowStats",
    "StatsHash",
    "Unanswered",
    "decode_epochs",
    "decode_served",
    "decode_stats",
    "drift_class_field",
    "drift_feature_field",
    "drift_score_field",
    "encode_served",
    "epoch_record",
    "latency_bucket",
    "latency_hist_field",
    "metric_prefix",
    "paired_prefix",
    "parse_drift_fields",
    "parse_outcome_fields",
    "routed_weights",
    "shadow_answers_field",
    "shadow_field",
    "squared_error_prefix",
    "sum_stats",
    "unit_metric_prefix",
    "unit_metric_state",
    "unit_requests_prefix",
    "unit_requests_state",
    "variant_prefix",
    "window_start",
]
