"""The request -> served mapping feedback is joined on, and the shadow answers kept
beside it.

Each request's mapping is a field of the hash of the hour it was served in
(``Keys.requests``): ``<request id>`` -> ``encode_served``.

A shadow's answer is kept beside the request's mapping, in the same hash and so
with the same expiry: field ``<request id>|s`` holds ``{"<shadow>": "<prediction>",
...}`` (JSON) until the request's feedback scores it, then ``!`` followed by what the
feedback said (JSON ``[variant, live prediction, metric, kind, value]``): a shadow
answer written after that is scored against it at once, not kept, and counted
``late``. ``|`` cannot occur in a request id, so the two kinds of field never collide.

Feedback whose request mapping is not in Redis yet (it waits in the serving
process until its next flush) is parked; the script that writes mappings
joins it, and a sweep expires what waited longer than the mapping is kept
(``core.store``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

__all__ = [
    "SHADOW_ANSWERS_SUFFIX",
    "SHADOW_SCORED",
    "UNSCORED",
    "Served",
    "ServedRow",
    "Unanswered",
    "decode_served",
    "encode_served",
    "shadow_answers_field",
]


class Unanswered(enum.Enum):
    """What stands in a served row's prediction when its variant did not answer."""

    ERROR = "error"  # counted as an error of the variant (the unit's y for error rate)
    OTHER = "other"  # a client error or a fallback without an error: not an error


ServedRow = tuple[str, str, int, Any, str | None]
"""(variant, model version, epoch, prediction or ``Unanswered``, unit): what the hot path
keeps per request until the flush encodes it, so no string is built on the request path.
The unit is None when the experiment's unit is the request, "" when the request named
no unit (it is then a unit of its own)."""


@dataclass(frozen=True)
class Served:
    """What served a request: variant, model version, epoch and the prediction (as text)."""

    variant: str
    model_version: str
    epoch: int
    prediction: str
    unit: str | None = None  # None: the unit is the request; "": a unit of its own


UNSCORED = "-"
"""The mapping of a request its variant did not answer (a fallback, an error): feedback
for it is received (its claim is taken) but never counted."""


def encode_served(
    variant: str, model_version: str, epoch: int, prediction: Any, unit: str | None = None
) -> str:
    """``champion|v1|7|1``: the mapping value feedback is joined on; with a unit,
    ``champion|v1|7/5|alice|1`` (the unit's length in UTF-8 bytes after the epoch, so a
    unit may hold any character, ``|`` too), and the request of an unanswered row is
    ``UNSCORED``."""
    if isinstance(prediction, Unanswered):
        return UNSCORED
    if unit is None:
        return f"{variant}|{model_version}|{epoch}|{prediction}"
    size = len(unit) if unit.isascii() else len(unit.encode())
    return f"{variant}|{model_version}|{epoch}/{size}|{unit}|{prediction}"


def decode_served(value: str) -> Served:
    """Read a mapping; one written before epochs were kept (``variant|version|prediction``)
    reads as epoch 0."""
    parts = value.split("|", 3)
    if len(parts) == 4:
        epoch, slash, length = parts[2].partition("/")
        if epoch.isdigit() and slash and length.isdigit():
            rest = parts[3].encode()
            size = int(length)
            unit, prediction = rest[:size].decode(), rest[size + 1 :].decode()
            return Served(parts[0], parts[1], int(epoch), prediction, unit)
        if parts[2].isdigit():
            return Served(parts[0], parts[1], int(parts[2]), parts[3])
    variant, version, prediction = value.split("|", 2)
    return Served(variant, version, 0, prediction)


SHADOW_ANSWERS_SUFFIX = "|s"
SHADOW_SCORED = "!"
"""A request's shadow answers field once its feedback has scored them."""


def shadow_answers_field(request_id: str) -> str:
    """The field, in the request's mapping hash, holding its shadows' answers."""
    return request_id + SHADOW_ANSWERS_SUFFIX
