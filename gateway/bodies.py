"""What the hot path reads from a request body: a JSON object, a predict's features."""

from __future__ import annotations

from typing import Any

import orjson

from core.errors import BadRequest

__all__ = ["json_object", "predict_payload"]


def json_object(body: bytes, not_an_object: str) -> dict[str, Any]:
    """``body`` parsed as a JSON object; BadRequest (``not_an_object``) for anything else."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON body: {exc}") from exc
    if type(payload) is not dict:
        raise BadRequest(not_an_object)
    return payload


def _features_ok(features: Any) -> bool:
    if type(features) is not list or not features:
        return False
    for value in features:
        kind = type(value)
        if kind is not float and kind is not int:
            return False
    return True


def predict_payload(body: bytes) -> dict[str, Any]:
    """A ``/predict`` body: a JSON object with a non-empty ``features`` list of numbers."""
    payload = json_object(body, "body must be a JSON object with a 'features' list")
    features = payload.get("features")
    if features is None:
        raise BadRequest("features: field required")
    if not _features_ok(features):
        raise BadRequest("features: must be a non-empty list of finite numbers")
    return payload
