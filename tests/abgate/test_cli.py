from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from abgate.redis_server import free_port
from core.store import Store
from model_workers.registry import ARTIFACT_NAME, ModelRegistry
from tests.conftest import write_config


def abgate(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "abgate", *args],
        capture_output=True,
        text=True,
        timeout=120,
        **kwargs,
    )


@pytest.mark.parametrize(
    "command",
    ["train", "models", "worker", "demo"],
)
def test_help_on_each_command(command: str) -> None:
    result = abgate(command, "--help")
    assert result.returncode == 0
    assert "usage: abgate" in result.stdout


def test_version_is_the_installed_distribution() -> None:
    result = abgate("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"abgate {importlib.metadata.version('abgate')}\n"
    assert result.stderr == ""


@pytest.mark.parametrize(
    "args",
    [
        ("no-such-command",),
        ("train",),  # --version missing
        ("train", "--version", "v1", "--n-estimators", "lots"),
        ("worker", "--version", "v1"),
    ],
)
def test_bad_call_is_one_line_and_nonzero(args: tuple[str, ...]) -> None:
    result = abgate(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "error:" in lines[0]


def test_train_list_show(tmp_path) -> None:
    root = str(tmp_path)
    trained = abgate(
        "train", "--version", "v7", "--n-estimators", "3", "--n-samples", "1000", "--registry", root
    )
    assert trained.returncode == 0, trained.stderr
    assert "demo v7: accuracy" in trained.stdout
    listing = abgate("models", "list", "--registry", root)
    assert "v7" in listing.stdout and "HistGradientBoostingClassifier" in listing.stdout
    shown = json.loads(abgate("models", "show", "demo", "v7", "--registry", root).stdout)
    assert shown["version"] == "v7"
    assert "reference_distribution" not in shown


def test_bad_training_value_is_one_line(tmp_path) -> None:
    result = abgate("train", "--version", "v1", "--label-noise", "1.5", "--registry", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip() == "abgate train: error: label_noise must be in [0, 1)"


def test_missing_version_show(tmp_path) -> None:
    result = abgate("models", "show", "demo", "v404", "--registry", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "not in the registry" in result.stderr


def test_worker_refuses_tampered_artifact(tmp_path) -> None:
    root = tmp_path / "models"
    assert abgate("train", "--version", "v1", "--n-estimators", "3", "--n-samples", "1000",
                  "--registry", str(root)).returncode == 0  # fmt: skip
    artifact = ModelRegistry(root).version_dir("demo", "v1") / ARTIFACT_NAME
    artifact.write_bytes(artifact.read_bytes() + b"tampered")
    result = abgate("worker", "--version", "v1", "--port", "1", "--registry", str(root))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not match the registered" in lines[0]


def test_analyze_answers_json_and_names_a_bad_field(tmp_path) -> None:
    good = {"variants": [
        {"name": "champion", "role": "champion", "weight": 50, "requests": 4000,
         "metrics": {"accuracy": {"type": "proportion", "n": 4000, "sum": 3360}}},
        {"name": "canary", "role": "canary", "weight": 50, "requests": 4000,
         "metrics": {"accuracy": {"type": "proportion", "n": 4000, "sum": 3600}}}]}  # fmt: skip
    path = tmp_path / "in.json"
    path.write_text(json.dumps(good))
    result = abgate("analyze", str(path))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [v["action"] for v in report["verdicts"]] == ["promote"]
    good["variants"][1]["metrics"]["accuracy"]["n"] = -1
    path.write_text(json.dumps(good))
    bad = abgate("analyze", str(path))
    assert bad.returncode == 1
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and "variants.1.metrics.accuracy.n" in lines[0]


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"ABGATE_REDIS_CLUSTER": "1"}, "ABGATE_REDIS_CLUSTER=1 needs REDIS_URL"),
        ({"ABGATE_MAX_BODY_BYTES": "lots"}, "ABGATE_MAX_BODY_BYTES: Input should be a valid"),
    ],
)
def test_bad_settings_are_one_line(env: dict[str, str], fragment: str) -> None:
    clean = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "ABGATE_REDIS_URL")}
    result = abgate("status", env={**clean, **env})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"abgate status: error: {fragment}"), lines


def test_single_node_mode_on_a_cluster_says_what_to_set(cluster_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ABGATE_REDIS_CLUSTER"}
    refused = abgate("status", env={**env, "REDIS_URL": cluster_url})
    assert refused.returncode == 1
    assert refused.stderr.strip().endswith("is a Redis Cluster node: set ABGATE_REDIS_CLUSTER=1")
    assert len(refused.stderr.strip().splitlines()) == 1
    ok = abgate("status", env={**env, "REDIS_URL": cluster_url, "ABGATE_REDIS_CLUSTER": "1"})
    assert ok.returncode == 0, ok.stderr


def test_gateway_refuses_a_cluster_node_in_single_node_mode(
    cluster_url: str, repo_root: Path
) -> None:
    """It would route, but every flush to a key on another node would fail: refuse at start."""
    env = {k: v for k, v in os.environ.items() if k != "ABGATE_REDIS_CLUSTER"}
    config = repo_root / "experiments" / "demo.yaml"
    refused = abgate(
        "gateway", "--config", str(config), "--port", str(free_port()),
        env={**env, "REDIS_URL": cluster_url},
    )  # fmt: skip
    assert refused.returncode == 1
    assert (
        refused.stderr.strip()
        .splitlines()[-1]
        .endswith("is a Redis Cluster node: set ABGATE_REDIS_CLUSTER=1")
    )


def test_apply_if_absent_keeps_a_stored_config(tmp_path, redis_url) -> None:
    ports = {"champion": free_port(), "canary": free_port()}
    first = write_config(tmp_path / "first.yaml", ports, {"champion": 90, "canary": 10})
    changed = write_config(tmp_path / "changed.yaml", ports, {"champion": 50, "canary": 50})
    env = {"REDIS_URL": redis_url}
    stored = abgate("apply", str(first), "--if-absent", env=env)
    assert stored.returncode == 0, stored.stderr
    assert "stored as version 1" in stored.stdout
    assert abgate("apply", str(changed), env=env).returncode == 0
    kept = abgate("apply", str(first), "--if-absent", env=env)
    assert kept.returncode == 0, kept.stderr
    assert "demo: version 2 is already stored; left as it is" in kept.stdout
    record = Store(redis_url).get_config("demo")
    assert record.version == 2
    assert [v["weight"] for v in record.config["variants"]] == [50, 50]


def test_a_reader_that_leaves_early_gets_no_traceback(repo_root) -> None:
    """`abgate validate ... | head -0`: the pipe is closed before the command writes."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before anything is written: the first write fails
    configs = [str(p) for p in (repo_root / "experiments").glob("*.yaml")]
    try:
        result = subprocess.run(
            [sys.executable, "-m", "abgate", "validate", *configs],
            stdout=write, stderr=subprocess.PIPE, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        os.close(write)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1


def test_validate_says_which_gate_judges_which_metric(repo_root) -> None:
    result = abgate("validate", str(repo_root / "experiments" / "shadow-canary.yaml"))
    assert result.returncode == 0, result.stderr
    lines = [line.strip() for line in result.stdout.splitlines()]
    shadow = next(line for line in lines if line.startswith("shadow gate:"))
    assert "serving no user" in shadow and "accuracy (scored from labels)" in shadow
    steps = next(line for line in lines if line.startswith("step gates:"))
    assert "error_rate, p99_latency_ms" in steps and "reward" in steps
