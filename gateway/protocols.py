"""The model-server protocols the gateway fronts, and where their answers hold predictions.

Pure: paths in, paths out; parsed JSON in, predictions out. The gateway
forwards a client's body untouched to the chosen variant's server and answers
with the server's own body; from that answer it only reads the predictions,
for label feedback, shadow agreement and drift sampling.

Client paths (the same as the servers', so a client needs only a new host):

- ``kserve-v1``: ``POST /v1/models/<model>:predict``, ``GET /v1/models/<model>``
- ``open-inference-v2``: ``POST /v2/models/<model>/infer``,
  ``GET /v2/models/<model>/ready``, ``GET /v2/models/<model>`` (metadata)
- ``mlflow``: ``POST /invocations`` (MLflow's path names no model)

A call that answers several rows is several outcomes: row ``i`` of request
``<rid>`` is joined by feedback as ``<rid>.<i>`` (``outcome_ids``); a call of
one row keeps ``<rid>``, as abgate's own ``/predict`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "MAX_JOINABLE_ROWS",
    "Operation",
    "ProtocolCall",
    "first_row",
    "outcome_ids",
    "predictions",
    "protocol_call",
    "upstream_paths",
]

Operation = Literal["predict", "ready", "metadata"]

# Rows of one call that get a joinable id each (`<rid>.0` ... `<rid>.999`); rows past it
# are answered, but are not outcomes: a huge batch must not flood the mapping buffer.
MAX_JOINABLE_ROWS = 1000

# Output names that hold the prediction when a V2 answer has several outputs (MLServer's
# scikit-learn runtime: "predict", "predict_proba"); otherwise the first output is read.
_PREDICTION_OUTPUTS = ("predict", "prediction", "predictions", "output_label", "label")


@dataclass(frozen=True, slots=True)
class ProtocolCall:
    """A client request on a protocol's own path: which protocol, model and operation."""

    protocol: str
    model: str | None
    operation: Operation


def _model_name(name: str) -> str | None:
    # The names a config accepts (letters, digits, '.', '_', '-'); anything else is no route.
    if name and name[0].isalnum() and all(c.isalnum() or c in "._-" for c in name):
        return name if name.isascii() else None
    return None


def protocol_call(method: bytes, path: str) -> ProtocolCall | None:
    """The protocol call ``method path`` is, or None when it is none of theirs."""
    if method == b"POST":
        if path == "/invocations":
            return ProtocolCall("mlflow", None, "predict")
        if path.startswith("/v2/models/") and path.endswith("/infer"):
            model = _model_name(path[11:-6])
            return ProtocolCall("open-inference-v2", model, "predict") if model else None
        if path.startswith("/v1/models/") and path.endswith(":predict"):
            model = _model_name(path[11:-8])
            return ProtocolCall("kserve-v1", model, "predict") if model else None
        return None
    if method == b"GET" or method == b"HEAD":
        if path.startswith("/v2/models/"):
            rest = path[11:]
            operation: Operation = "metadata"
            if rest.endswith("/ready"):
                rest, operation = rest[:-6], "ready"
            model = _model_name(rest)
            return ProtocolCall("open-inference-v2", model, operation) if model else None
        if path.startswith("/v1/models/"):
            model = _model_name(path[11:])
            return ProtocolCall("kserve-v1", model, "ready") if model else None
    return None


def upstream_paths(protocol: str, model: str) -> dict[str, bytes]:
    """The path of each operation on a variant's server; ``model``: its name there."""
    if protocol == "open-inference-v2":
        base = f"/v2/models/{model}".encode()
        return {"predict": base + b"/infer", "ready": base + b"/ready", "metadata": base}
    if protocol == "kserve-v1":
        base = f"/v1/models/{model}".encode()
        return {"predict": base + b":predict", "ready": base, "metadata": base}
    if protocol == "mlflow":
        return {"predict": b"/invocations"}
    return {"predict": b"/predict"}


def outcome_ids(request_id: str, rows: int) -> list[str]:
    """The feedback ids of a call's rows: the request id for one row, else ``<rid>.<i>``."""
    if rows == 1:
        return [request_id]
    return [f"{request_id}.{i}" for i in range(min(rows, MAX_JOINABLE_ROWS))]


def _scalar(value: Any) -> Any:
    # A row of one value ([0] from a [n, 1] tensor) is that value: a label compares to it.
    while type(value) is list and len(value) == 1:
        value = value[0]
    return value


def _tensor_rows(output: dict[str, Any]) -> list[Any] | None:
    data, shape = output.get("data"), output.get("shape")
    if type(data) is not list:
        return None
    if data and type(data[0]) is list:  # nested rows, as some servers send them
        return [_scalar(row) for row in data]
    if type(shape) is list and len(shape) >= 2 and all(type(d) is int and d > 0 for d in shape):
        width = len(data) // shape[0] if shape[0] else 0
        if width > 1 and width * shape[0] == len(data):
            return [data[i * width : (i + 1) * width] for i in range(shape[0])]
    return [_scalar(value) for value in data]


def _v2_predictions(answer: Any) -> list[Any] | None:
    outputs = answer.get("outputs") if type(answer) is dict else None
    if type(outputs) is not list or not outputs:
        return None
    tensors = [o for o in outputs if type(o) is dict]
    if not tensors:
        return None
    named = {o.get("name"): o for o in tensors}
    chosen = next((named[n] for n in _PREDICTION_OUTPUTS if n in named), tensors[0])
    return _tensor_rows(chosen)


def predictions(protocol: str, answer: Any) -> list[Any] | None:
    """The predictions, one per row, in a server's parsed answer; None when there are none.

    ``abgate``: ``{"prediction": p}`` (one row). ``kserve-v1``: ``{"predictions": [...]}``.
    ``mlflow``: ``{"predictions": [...]}`` (MLflow 2 and 3) or a bare list (MLflow 1).
    ``open-inference-v2``: the output named ``predict`` (or a similar name), else the first,
    cut into rows by its ``shape``.
    """
    if protocol == "open-inference-v2":
        return _v2_predictions(answer)
    if protocol == "abgate":
        return [answer.get("prediction")] if type(answer) is dict else None
    found = answer.get("predictions") if type(answer) is dict else answer
    if protocol == "mlflow" and type(found) is dict:  # a DataFrame answer: its first column
        found = next(iter(found.values()), None)
    if type(found) is not list:
        return None
    return [_scalar(p) for p in found]


def _numbers(row: Any) -> list[Any] | None:
    if type(row) is dict:
        row = list(row.values())
    if type(row) is list and row and all(type(v) in (int, float) for v in row):
        return row
    return None


def first_row(protocol: str, payload: Any) -> list[Any] | None:
    """The features of a request's first row, for drift sampling; None when not numeric."""
    if type(payload) is not dict:
        return None
    if protocol == "open-inference-v2":
        inputs = payload.get("inputs")
        if type(inputs) is not list or not inputs or type(inputs[0]) is not dict:
            return None
        data, shape = inputs[0].get("data"), inputs[0].get("shape")
        if type(data) is not list or not data:
            return None
        if type(data[0]) is list:
            return _numbers(data[0])
        if type(shape) is list and len(shape) == 2 and type(shape[1]) is int and shape[1] > 0:
            return _numbers(data[: shape[1]])
        return _numbers(data)
    if protocol == "abgate":
        return _numbers(payload.get("features"))
    for key in ("instances", "inputs"):
        rows = payload.get(key)
        if type(rows) is list and rows:
            return _numbers(rows[0])
    split = payload.get("dataframe_split")
    if type(split) is dict and type(split.get("data")) is list and split["data"]:
        return _numbers(split["data"][0])
    records = payload.get("dataframe_records")
    if type(records) is list and records:
        return _numbers(records[0])
    return None
