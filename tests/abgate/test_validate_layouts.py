"""`abgate validate`: experiments checked together, and what each assignment layout gives up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from core.store import Store

VARIANT = (
    "  - {{name: {name}, role: {role}, model_version: v1,"
    " endpoints: ['http://127.0.0.1:{port}'], weight: {weight}}}\n"
)


def write(path: Path, name: str, variants: list[tuple[str, str, float]], extra: str = "") -> Path:
    text = f"name: {name}\nmodel: m\n{extra}variants:\n"
    for i, (variant, role, weight) in enumerate(variants):
        text += VARIANT.format(name=variant, role=role, port=9000 + i, weight=weight)
    path.write_text(text)
    return path


def validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "abgate", "validate", *map(str, paths)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


THREE = [("champion", "champion", 80), ("challenger", "challenger", 10), ("canary", "canary", 10)]


def test_a_second_experiment_on_a_model_is_refused_at_its_model_line(tmp_path: Path) -> None:
    first = write(tmp_path / "first.yaml", "first", THREE)
    second = write(tmp_path / "second.yaml", "second", THREE)
    result = validate(first, second)
    assert result.returncode == 1
    assert result.stdout.startswith(f"{first}: ok (first:")
    [line] = result.stderr.splitlines()
    assert line.startswith(
        f"{second}:2: model: experiment first ({first}) already routes model m: two "
        "experiments on one model need disjoint namespaces"
    ), line


def test_overlapping_namespaces_are_refused_and_disjoint_ones_pass(tmp_path: Path) -> None:
    first = write(tmp_path / "first.yaml", "first", THREE, "namespace: [ns, 0, 0.5]\n")
    overlapping = write(tmp_path / "o.yaml", "second", THREE, "namespace: [ns, 0.4, 1]\n")
    result = validate(first, overlapping)
    assert result.returncode == 1
    assert result.stderr.startswith(f"{overlapping}:3: namespace.start: [0.4, 1) overlaps")
    disjoint = write(tmp_path / "d.yaml", "second", THREE, "namespace: [ns, 0.5, 1]\n")
    result = validate(first, disjoint)
    assert result.returncode == 0, result.stderr
    assert "  namespace: units in [0.5, 1) of namespace 'ns'" in result.stdout


def test_validate_says_what_each_layout_gives_up(tmp_path: Path) -> None:
    monotone = write(tmp_path / "monotone.yaml", "a", THREE)
    growthbook = write(
        tmp_path / "growthbook.yaml",
        "b",
        [
            ("champion", "champion", 70),
            ("challenger", "challenger", 10),
            ("other", "challenger", 10),
            ("canary", "canary", 10),
        ],
        "assignment: {layout: growthbook}\n",
    )
    plain = write(
        tmp_path / "plain.yaml", "c", [("champion", "champion", 50), ("b", "challenger", 50)]
    )
    result = validate(monotone)
    assert result.returncode == 0, result.stderr
    assert "  assignment: monotone layout: ramp safe" in result.stdout
    assert "gives up agreement with a GrowthBook SDK" in result.stdout
    for path, expected in (
        (growthbook, "gives up ramp safety: as canary ramps, units move between champion and "
                     "challenger, challenger and other"),
        (plain, "monotone layout, no ramp variant: one hash with GrowthBook's ranges; a "
                "GrowthBook SDK with seed 'c' and these weights assigns every unit the same"),
    ):  # fmt: skip
        result = validate(path)
        assert result.returncode == 0, result.stderr
        assert expected in result.stdout, result.stdout


def test_apply_and_ramp_refuse_a_second_experiment_on_a_stored_model(
    tmp_path: Path, redis_url: str
) -> None:
    env = {"REDIS_URL": redis_url, "ABGATE_REGISTRY_DIR": str(tmp_path / "registry")}
    first = write(tmp_path / "first.yaml", "first", THREE)
    ramp = "ramp: {steps: [10, 50], min_duration_s: 0, max_duration_s: 5}\n"
    second = write(tmp_path / "second.yaml", "second", THREE, ramp)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "abgate", *args],
            capture_output=True, text=True, timeout=120, env=env, check=False,
        )  # fmt: skip

    assert run("apply", str(first)).returncode == 0
    for command in ("apply", "ramp"):
        result = run(command, str(second))
        assert result.returncode == 1, result.stdout
        assert result.stderr.startswith(
            f"abgate {command}: error: {second}:2: model: experiment first (stored version 1) "
            "already routes model m"
        ), result.stderr
    assert Store(redis_url).experiments() == ["first"]
