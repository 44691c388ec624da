"""Several experiments on one model: namespaces in the config, and what is refused where."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from core.errors import ConfigError, NotFound
from experiments.config import ExperimentConfig, validate_experiment
from experiments.loader import load_experiment_beside, parse_experiment
from experiments.namespaces import Neighbour, routing_conflicts
from gateway.live import LiveExperiments


def experiment(
    name: str, namespace: Any = None, model: str = "m", **extra: Any
) -> ExperimentConfig:
    data: dict[str, Any] = {
        "name": name,
        "model": model,
        "variants": [
            {"name": "a", "role": "champion", "model_version": "v1",
             "endpoints": ["http://127.0.0.1:9001"], "weight": 50},
            {"name": "b", "role": "challenger", "model_version": "v2",
             "endpoints": ["http://127.0.0.1:9002"], "weight": 50},
        ],
        **extra,
    }  # fmt: skip
    if namespace is not None:
        data["namespace"] = namespace
    return validate_experiment(data)


def conflicts(config: ExperimentConfig, *others: ExperimentConfig) -> list[tuple[Any, str]]:
    return routing_conflicts(config, [Neighbour(o, f"{o.name}.yaml") for o in others])


# --- the namespace field ---------------------------------------------------------------


def test_namespace_reads_the_mapping_and_growthbooks_list_form() -> None:
    mapping = experiment("x", {"id": "checkout", "start": 0, "end": 0.5}).namespace
    listed = experiment("x", ["checkout", 0, 0.5]).namespace
    assert mapping == listed
    assert listed is not None and (listed.id, listed.start, listed.end) == ("checkout", 0, 0.5)


@pytest.mark.parametrize(
    ("namespace", "fragment"),
    [
        (["ns", 0.5, 0.5], "namespace.end: must be above start (0.5), got 0.5"),
        (["ns", 0.6, 0.2], "namespace.end: must be above start (0.6), got 0.2"),
        (["ns", -0.1, 0.2], "namespace.start: must be greater than or equal to 0"),
        (["ns", 0, 1.5], "namespace.end: must be less than or equal to 1"),
        (["", 0, 1], "namespace.id: must not be empty"),
        ({"id": "ns", "start": 0}, "namespace.end: field required"),
    ],
)
def test_bad_namespaces_are_refused_at_their_field(namespace: Any, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        experiment("x", namespace)
    assert any(fragment in problem for problem in info.value.problems), info.value.problems


def test_layout_is_monotone_unless_growthbook_is_chosen() -> None:
    assert experiment("x").assignment.layout == "monotone"
    chosen = experiment("x", assignment={"layout": "growthbook"})
    assert chosen.assignment.layout == "growthbook"
    with pytest.raises(ConfigError, match=r"assignment\.layout"):
        experiment("x", assignment={"layout": "js"})


# --- which experiments can share a model -----------------------------------------------


def test_disjoint_ranges_of_one_namespace_share_a_model() -> None:
    left = experiment("left", ["ns", 0, 0.5])
    right = experiment("right", ["ns", 0.5, 1])
    assert conflicts(right, left) == []
    assert conflicts(left, right) == []


def test_other_models_and_new_versions_of_the_same_experiment_do_not_conflict() -> None:
    config = experiment("one")
    assert conflicts(config, experiment("other", model="n")) == []
    assert conflicts(config, experiment("one", ["ns", 0, 0.1])) == []


def test_a_second_experiment_without_namespace_is_refused_at_model() -> None:
    [(loc, message)] = conflicts(experiment("second"), experiment("first"))
    assert loc == ("model",)
    assert "experiment first (first.yaml) already routes model m" in message
    assert "disjoint namespaces" in message


def test_a_namespace_beside_an_experiment_taking_every_unit_is_refused() -> None:
    [(loc, message)] = conflicts(experiment("second", ["ns", 0, 0.5]), experiment("first"))
    assert loc == ("namespace",)
    assert "without a namespace (every unit)" in message


def test_overlapping_ranges_are_refused_at_namespace_start() -> None:
    [(loc, message)] = conflicts(
        experiment("second", ["ns", 0.4, 0.8]), experiment("first", ["ns", 0, 0.5])
    )
    assert loc == ("namespace", "start")
    assert "[0.4, 0.8) overlaps experiment first (first.yaml)'s [0, 0.5)" in message


def test_different_namespace_ids_on_one_model_are_refused() -> None:
    [(loc, message)] = conflicts(
        experiment("second", ["b", 0.5, 1]), experiment("first", ["a", 0, 0.5])
    )
    assert loc == ("namespace", "id")
    assert "must share a namespace id" in message


def test_experiments_sharing_a_namespace_must_hash_the_same_unit() -> None:
    header = {"source": "header", "name": "X-User-ID"}
    [(loc, message)] = conflicts(
        experiment("second", ["ns", 0.5, 1], unit=header), experiment("first", ["ns", 0, 0.5])
    )
    assert loc == ("unit",)
    assert "must hash the same unit" in message


# --- FILE:LINE -------------------------------------------------------------------------

FIRST = """\
name: first
model: m
namespace: [ns, 0, 0.5]
variants:
  - {name: a, role: champion, model_version: v1, endpoints: ['http://127.0.0.1:9001'], weight: 100}
"""


def second(namespace_lines: str) -> str:
    return (
        "name: second\n"
        "description: the second experiment on model m\n"
        "model: m\n"
        f"{namespace_lines}"
        "variants:\n"
        "  - {name: a, role: champion, model_version: v1,"
        " endpoints: ['http://127.0.0.1:9001'], weight: 100}\n"
    )


def test_conflicts_point_at_the_line_of_the_field(tmp_path: Path) -> None:
    first = Neighbour(parse_experiment(FIRST, "first.yaml"), "first.yaml")
    cases = {
        "": "second.yaml:3: model: experiment first (first.yaml) already routes model m",
        "namespace:\n  id: ns\n  start: 0.25\n  end: 0.75\n": (
            "second.yaml:6: namespace.start: [0.25, 0.75) overlaps experiment first"
        ),
        "namespace:\n  id: other\n  start: 0.5\n  end: 1\n": (
            "second.yaml:5: namespace.id: experiment first (first.yaml) uses namespace 'ns'"
        ),
    }
    for lines, expected in cases.items():
        path = tmp_path / "second.yaml"
        path.write_text(second(lines))
        with pytest.raises(ConfigError) as info:
            load_experiment_beside(path, [first])
        [problem] = info.value.problems
        assert problem.startswith(str(tmp_path / expected)), problem
    path.write_text(second("namespace:\n  id: ns\n  start: 0.5\n  end: 1\n"))
    assert load_experiment_beside(path, [first]).namespace is not None


# --- the gateway's route of a model ----------------------------------------------------


def test_a_stored_config_that_would_shadow_another_is_not_routed_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    live = LiveExperiments()
    live.install(experiment("alpha"), 1)
    with caplog.at_level(logging.ERROR, logger="abgate.config"):
        live.install(experiment("beta"), 1)
    assert "not routing experiment beta: model: experiment alpha" in caplog.text
    assert set(live.unrouted) == {"beta"}
    assert live.for_model("m").only is live.by_name["alpha"]
    # Once beta gets its own namespace next to a namespaced alpha, both are routed.
    live.install(experiment("alpha", ["ns", 0, 0.5]), 2)
    live.install(experiment("beta", ["ns", 0.5, 1]), 2)
    assert live.unrouted == {}
    route = live.for_model("m")
    picked = {route.pick(f"user-{i}").name for i in range(200)}  # type: ignore[union-attr]
    assert picked == {"alpha", "beta"}


def test_experiments_on_one_model_must_share_its_protocol() -> None:
    left = experiment("left", ["ns", 0, 0.5])
    right = experiment("right", ["ns", 0.5, 1], protocol="mlflow")
    found = conflicts(right, left)
    assert [loc for loc, _ in found] == [("protocol",)]
    assert "experiment left (left.yaml) routes model m with protocol abgate" in found[0][1]
    assert conflicts(experiment("right", ["ns", 0.5, 1]), left) == []


def test_each_protocol_routes_its_own_models_and_says_where_a_model_went() -> None:
    live = LiveExperiments()
    live.install(experiment("native", model="m"), 1)
    live.install(experiment("served", model="s", protocol="open-inference-v2"), 1)
    live.install(experiment("scored", model="f", protocol="mlflow"), 1)
    assert live.for_model(None).first.name == "native"
    assert live.for_protocol("open-inference-v2", "s").first.name == "served"
    assert live.for_protocol("mlflow", None).first.name == "scored"
    with pytest.raises(NotFound, match="it is served with protocol open-inference-v2"):
        live.for_model("s")
    with pytest.raises(NotFound, match="no experiment routes model 'm' with protocol kserve-v1"):
        live.for_protocol("kserve-v1", "m")
    target = live.for_protocol("open-inference-v2", "s").first.champion
    assert target.paths["predict"] == b"/v2/models/s/infer"
