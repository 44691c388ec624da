"""The protocols' paths and where their answers hold predictions (gateway/protocols.py)."""

from __future__ import annotations

import pytest

from gateway.protocols import (
    MAX_JOINABLE_ROWS,
    ProtocolCall,
    first_row,
    outcome_ids,
    predictions,
    protocol_call,
    upstream_paths,
)


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        (b"POST", "/v2/models/clf/infer", ProtocolCall("open-inference-v2", "clf", "predict")),
        (b"GET", "/v2/models/clf/ready", ProtocolCall("open-inference-v2", "clf", "ready")),
        (b"HEAD", "/v2/models/clf/ready", ProtocolCall("open-inference-v2", "clf", "ready")),
        (b"GET", "/v2/models/clf.a-1", ProtocolCall("open-inference-v2", "clf.a-1", "metadata")),
        (b"POST", "/v1/models/clf:predict", ProtocolCall("kserve-v1", "clf", "predict")),
        (b"GET", "/v1/models/clf", ProtocolCall("kserve-v1", "clf", "ready")),
        (b"POST", "/invocations", ProtocolCall("mlflow", None, "predict")),
        # Not theirs: abgate's own paths, other operations, names no config accepts.
        (b"POST", "/predict", None),
        (b"POST", "/v1/clf/predict", None),
        (b"GET", "/invocations", None),
        (b"POST", "/v2/models/clf/versions/2/infer", None),
        (b"POST", "/v2/models//infer", None),
        (b"POST", "/v2/models/../admin/infer", None),
        (b"POST", "/v1/models/a/b:predict", None),
        (b"GET", "/v2/models/clf/ready/", None),
        (b"DELETE", "/v2/models/clf", None),
        (b"POST", "/v2/models/ćlf/infer", None),
    ],
)
def test_client_paths(method: bytes, path: str, expected: ProtocolCall | None) -> None:
    assert protocol_call(method, path) == expected


def test_upstream_paths_name_the_model_on_its_server() -> None:
    assert upstream_paths("open-inference-v2", "clf-v2") == {
        "predict": b"/v2/models/clf-v2/infer",
        "ready": b"/v2/models/clf-v2/ready",
        "metadata": b"/v2/models/clf-v2",
    }
    assert upstream_paths("kserve-v1", "clf")["predict"] == b"/v1/models/clf:predict"
    assert upstream_paths("kserve-v1", "clf")["ready"] == b"/v1/models/clf"
    assert upstream_paths("mlflow", "clf") == {"predict": b"/invocations"}
    assert upstream_paths("abgate", "clf") == {"predict": b"/predict"}


def test_outcome_ids_keep_the_request_id_for_one_row_and_suffix_rows() -> None:
    assert outcome_ids("abc", 1) == ["abc"]
    assert outcome_ids("abc", 3) == ["abc.0", "abc.1", "abc.2"]
    many = outcome_ids("abc", MAX_JOINABLE_ROWS + 5)
    assert len(many) == MAX_JOINABLE_ROWS and many[-1] == f"abc.{MAX_JOINABLE_ROWS - 1}"


def test_v2_predictions_by_output_name_and_shape() -> None:
    # MLServer's scikit-learn runtime: [n, 1] INT64, flat data.
    answer = {"outputs": [{"name": "predict", "shape": [3, 1], "datatype": "INT64",
                           "data": [1, 0, 1]}]}  # fmt: skip
    assert predictions("open-inference-v2", answer) == [1, 0, 1]
    # Several outputs: the one named like a prediction, wherever it is.
    proba = {"name": "predict_proba", "shape": [2, 2], "data": [0.1, 0.9, 0.8, 0.2]}
    label = {"name": "label", "shape": [2], "data": [1, 0]}
    assert predictions("open-inference-v2", {"outputs": [proba, label]}) == [1, 0]
    # Only a [n, k] output: each row is its k values.
    assert predictions("open-inference-v2", {"outputs": [proba]}) == [[0.1, 0.9], [0.8, 0.2]]
    # Nested rows, as some servers send them.
    nested = {"outputs": [{"name": "y", "shape": [2, 1], "data": [[3], [4]]}]}
    assert predictions("open-inference-v2", nested) == [3, 4]
    for broken in ({}, {"outputs": []}, {"outputs": [1]}, {"outputs": [{"data": 5}]}, [], None):
        assert predictions("open-inference-v2", broken) is None


def test_kserve_and_mlflow_predictions() -> None:
    assert predictions("kserve-v1", {"predictions": [1, 0]}) == [1, 0]
    assert predictions("kserve-v1", {"predictions": [[1], [0]]}) == [1, 0]
    assert predictions("kserve-v1", {"error": "x"}) is None
    assert predictions("mlflow", {"predictions": [2, 3]}) == [2, 3]
    assert predictions("mlflow", [2, 3]) == [2, 3]  # MLflow 1's bare list
    assert predictions("mlflow", {"predictions": {"label": [1, 0], "p": [0.9, 0.2]}}) == [1, 0]
    assert predictions("mlflow", "text") is None
    assert predictions("abgate", {"prediction": 1, "probability": [0.2, 0.8]}) == [1]


def test_first_row_of_each_protocol() -> None:
    row = [0.5, 1.0, -2.0]
    v2 = {"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP64",
                      "data": [*row, 9.0, 9.0, 9.0]}]}  # fmt: skip
    assert first_row("open-inference-v2", v2) == row
    assert first_row("open-inference-v2", {"inputs": [{"data": [row, row]}]}) == row
    assert first_row("kserve-v1", {"instances": [row, row]}) == row
    assert first_row("mlflow", {"inputs": [row]}) == row
    assert (
        first_row("mlflow", {"dataframe_split": {"columns": ["a", "b", "c"], "data": [row]}}) == row
    )
    assert first_row("mlflow", {"dataframe_records": [{"a": 0.5, "b": 1.0, "c": -2.0}]}) == row
    assert first_row("abgate", {"features": row}) == row
    for protocol, payload in (("kserve-v1", {"instances": [["a"]]}), ("mlflow", "a,b\n1,2"),
                              ("open-inference-v2", {"inputs": []}), ("mlflow", {})):  # fmt: skip
        assert first_row(protocol, payload) is None
