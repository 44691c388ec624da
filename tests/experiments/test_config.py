"""The experiment config models: defaults, field checks, cross-field checks and helpers."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from core.errors import ConfigError, NotFound
from experiments.config import ExperimentConfig, validate_experiment, validation_problems


def base() -> dict[str, Any]:
    """A valid three-variant experiment as plain data."""
    return {
        "name": "demo",
        "model": "demo",
        "unit": {"source": "header", "name": "X-User-ID"},
        "variants": [
            {"name": "champion", "role": "champion", "model_version": "v1",
             "endpoints": ["http://127.0.0.1:8101"], "weight": 80},
            {"name": "challenger", "role": "challenger", "model_version": "v2",
             "endpoints": ["http://127.0.0.1:8102"], "weight": 10},
            {"name": "canary", "role": "canary", "model_version": "v3",
             "endpoints": ["http://127.0.0.1:8103"], "weight": 10},
        ],
    }  # fmt: skip


def problems(data: dict[str, Any]) -> dict[str, str]:
    """Field path -> message of every problem in ``data`` (which must be invalid)."""
    with pytest.raises(ValidationError) as caught:
        ExperimentConfig.model_validate(data)
    return {p.path: p.message for p in validation_problems(caught.value)}


def with_changes(**changes: Any) -> dict[str, Any]:
    data = base()
    data.update(changes)
    return data


def test_defaults_are_filled_in() -> None:
    config = ExperimentConfig.model_validate(base())
    assert config.seed == "demo"  # the experiment name
    assert config.shadows == ()
    assert config.override.enabled is False
    assert config.override.header == "X-Abgate-Variant"
    assert config.fallback.enabled is True
    assert config.fallback.on == ("connect_error", "timeout", "5xx")
    assert config.variants[0].timeout_ms == 1000
    assert config.statistics.alpha == 0.05
    assert config.statistics.correction == "holm"
    assert config.metrics.primary.name == "accuracy"
    assert {g.name for g in config.metrics.guardrails} == {"error_rate", "p99_latency_ms"}
    assert config.ramp is None


def test_explicit_seed_wins() -> None:
    assert ExperimentConfig.model_validate(with_changes(seed="demo-2026")).seed == "demo-2026"


def test_models_are_frozen() -> None:
    config = ExperimentConfig.model_validate(base())
    with pytest.raises(ValidationError):
        config.name = "other"
    with pytest.raises(ValidationError):
        config.variants[0].weight = 50


def test_champion_variant_and_weights_helpers() -> None:
    config = ExperimentConfig.model_validate(base())
    assert config.champion.name == "champion"
    assert config.variant("challenger").model_version == "v2"
    assert config.weights == {"champion": 80, "challenger": 10, "canary": 10}
    with pytest.raises(NotFound, match="no variant 'nope'"):
        config.variant("nope")


def test_ramp_variant_resolution() -> None:
    implicit = ExperimentConfig.model_validate(base())
    assert implicit.ramp_variant is not None and implicit.ramp_variant.name == "canary"

    data = base()
    data["ramp"] = {"variant": "challenger", "steps": [10, 50]}
    explicit = ExperimentConfig.model_validate(data)
    assert explicit.ramp_variant is not None and explicit.ramp_variant.name == "challenger"

    data = base()
    data["ramp"] = {"steps": [1, 5]}
    filled = ExperimentConfig.model_validate(data)
    assert filled.ramp is not None and filled.ramp.variant == "canary"  # stored explicitly

    data = base()
    data["variants"][2]["role"] = "challenger"
    assert ExperimentConfig.model_validate(data).ramp_variant is None
    data["ramp"] = {"steps": [1, 5]}
    assert "no variant to ramp" in problems(data)["ramp.variant"]


def test_with_weights_returns_a_validated_copy() -> None:
    config = ExperimentConfig.model_validate(base())
    changed = config.with_weights({"champion": 70, "canary": 20})
    assert changed.weights == {"champion": 70, "challenger": 10, "canary": 20}
    assert config.weights == {"champion": 80, "challenger": 10, "canary": 10}
    with pytest.raises(ConfigError) as caught:
        config.with_weights({"canary": 50})
    assert caught.value.problems == [
        "variants.2.weight: weights must sum to 100, got 140 "
        "(champion 80 + challenger 10 + canary 50)"
    ]
    with pytest.raises(ConfigError, match=r"weights\.nope: unknown variant"):
        config.with_weights({"nope": 10})
    with pytest.raises(ConfigError, match=r"variants\.0\.weight: must be greater than or equal"):
        config.with_weights({"champion": -10, "challenger": 100})


def test_ramp_weights_keep_the_relative_split_of_the_others() -> None:
    config = ExperimentConfig.model_validate(base())
    weights = config.ramp_weights(28)
    assert weights["canary"] == 28
    assert weights["champion"] == pytest.approx(64)
    assert weights["challenger"] == pytest.approx(8)
    assert sum(weights.values()) == pytest.approx(100)
    full = config.with_weights(config.ramp_weights(100))
    assert full.weights == {"champion": 0, "challenger": 0, "canary": 100}
    # From 100 % back down: the others have no share to keep, so the champion takes the rest.
    assert full.ramp_weights(5) == {"champion": 95, "challenger": 0, "canary": 5}


def test_json_dump_round_trips() -> None:
    data = base()
    data["shadows"] = [{"name": "shadow", "model_version": "v4",
                        "endpoints": ["https://models.internal"], "sample_rate": 0.25}]  # fmt: skip
    data["ramp"] = {"steps": [1, 5.5, 100]}
    config = ExperimentConfig.model_validate(data)
    assert ExperimentConfig.model_validate(config.model_dump(mode="json")) == config
    assert validate_experiment(config.model_dump(mode="json")) == config


@pytest.mark.parametrize(
    ("url", "stored"),
    [
        ("http://127.0.0.1:8101", "http://127.0.0.1:8101"),
        ("http://127.0.0.1:8101/", "http://127.0.0.1:8101"),
        ("https://models.internal", "https://models.internal"),
        ("http://worker-1.models.svc.cluster.local:80", None),
        ("http://localhost:9000", None),
        ("http://[::1]:8080", None),
        ("http://[2001:db8::1]", None),
    ],
)
def test_valid_endpoints(url: str, stored: str | None) -> None:
    data = base()
    data["variants"][0]["endpoints"] = [url]
    config = ExperimentConfig.model_validate(data)
    assert config.variants[0].endpoints == (stored or url,)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1:8101",
        "127.0.0.1:8101",
        "http://",
        "http:///predict",
        "http://127.0.0.1:8101/predict",
        "http://127.0.0.1:8101/v1/",
        "http://127.0.0.1:8101?x=1",
        "http://127.0.0.1:8101/?x=1",
        "http://127.0.0.1:8101#top",
        "http://user:pass@127.0.0.1:8101",
        "http://evil.com@127.0.0.1",
        "http://127.0.0.1:0",
        "http://127.0.0.1:65536",
        "http://127.0.0.1:http",
        "http://127.0.0.1:",
        "http://1.2.3",
        "http://300.1.1.1",
        "http://-bad.example",
        "http://bad_host.example",
        "http://exa mple.com",
        "http://example.com\\@other",
        " http://example.com",
        "http://[::1",
        "http://[nope]:80",
        "HTTP://example.com",
    ],
)
def test_invalid_endpoints(url: str) -> None:
    data = base()
    data["variants"][0]["endpoints"] = [url]
    found = problems(data)
    assert list(found) == ["variants.0.endpoints.0"], found
    assert "expected http://host[:port]" in found["variants.0.endpoints.0"]


def test_endpoint_lists() -> None:
    data = base()
    data["variants"][0]["endpoints"] = []
    assert "at least 1" in problems(data)["variants.0.endpoints"]
    data["variants"][0]["endpoints"] = ["http://a:1", "http://a:1/"]
    assert "duplicate endpoint" in problems(data)["variants.0.endpoints.1"]
    data = base()
    data["variants"][1]["endpoints"] = ["http://127.0.0.1:8101"]  # v1's worker
    assert "already serves model version v1" in problems(data)["variants.1.endpoints.0"]


@pytest.mark.parametrize(
    ("weights", "ok"),
    [
        ((80, 10, 10), True),
        ((33.3333333, 33.3333333, 33.3333334), True),
        ((100, 0, 0), True),
        ((99.9999995, 0, 0.0000005), True),
        ((80, 10, 9.99), False),
        ((80, 10, 10.00001), False),
        ((90, 10, 10), False),
    ],
)
def test_weights_must_sum_to_100(weights: tuple[float, ...], ok: bool) -> None:
    data = base()
    for variant, weight in zip(data["variants"], weights, strict=True):
        variant["weight"] = weight
    if ok:
        ExperimentConfig.model_validate(data)
    else:
        assert problems(data)["variants.2.weight"].startswith("weights must sum to 100")


@pytest.mark.parametrize(
    ("field", "value", "phrase"),
    [
        ("weight", -1, "greater than or equal to 0"),
        ("weight", 101, "less than or equal to 100"),
        ("weight", "80", "valid number"),
        ("weight", True, "valid number"),
        ("weight", float("nan"), "finite number"),
        ("timeout_ms", 0, "greater than 0"),
        ("timeout_ms", -5, "greater than 0"),
        ("timeout_ms", 10**9, "less than or equal to 600000"),
        ("timeout_ms", 2.5, "valid integer"),
        ("role", "champ", "'champion', 'challenger' or 'canary'"),
        ("name", "Champion", "lowercase"),
        ("name", "-x", "lowercase"),
        ("model_version", "v1/../../etc", "letters, digits"),
    ],
)
def test_variant_field_checks(field: str, value: Any, phrase: str) -> None:
    data = base()
    data["variants"][1][field] = value
    assert phrase in problems(data)[f"variants.1.{field}"]


def test_unknown_fields_are_rejected_with_a_hint() -> None:
    data = with_changes(weights={"a": 1})
    data["variants"][0]["endpoint"] = ["http://127.0.0.1:8101"]
    data["statistics"] = {"alhpa": 0.1}
    found = problems(data)
    assert found["weights"].startswith("unknown field 'weights'")
    assert "did you mean 'endpoints'?" in found["variants.0.endpoint"]
    assert "did you mean 'alpha'?" in found["statistics.alhpa"]


def test_roles() -> None:
    data = base()
    data["variants"][1]["role"] = "champion"
    assert "exactly one champion" in problems(data)["variants.1.role"]
    data = base()
    data["variants"][0]["role"] = "challenger"
    assert "none has" in problems(data)["variants"]
    data = base()
    data["variants"][1]["role"] = "canary"
    assert "at most one canary" in problems(data)["variants.2.role"]


def test_names_are_unique_across_variants_and_shadows() -> None:
    data = base()
    data["shadows"] = [{"name": "canary", "model_version": "v4",
                        "endpoints": ["http://127.0.0.1:8104"]}]  # fmt: skip
    assert "duplicate name 'canary'" in problems(data)["shadows.0.name"]


def test_unit_checks() -> None:
    assert (
        "required when source is header"
        in problems(with_changes(unit={"source": "header"}))["unit.name"]
    )
    assert (
        "required when source is json_field"
        in problems(with_changes(unit={"source": "json_field", "name": ""}))["unit.name"]
    )
    assert (
        "HTTP header name"
        in problems(with_changes(unit={"source": "header", "name": "X U"}))["unit.name"]
    )
    assert "only used when" in problems(with_changes(unit={"name": "X-User-ID"}))["unit.name"]
    assert (
        "'request_id', 'header' or 'json_field'"
        in problems(with_changes(unit={"source": "cookie", "name": "x"}))["unit.source"]
    )
    config = ExperimentConfig.model_validate(with_changes(unit={"source": "json_field",
                                                                 "name": "user_id"}))  # fmt: skip
    assert config.unit.name == "user_id"
    assert ExperimentConfig.model_validate(with_changes(unit={})).unit.source == "request_id"


def test_override_checks() -> None:
    found = problems(with_changes(override={"enabled": True, "header": "X:Variant"}))
    assert "HTTP header name" in found["override.header"]
    found = problems(with_changes(override={"enabled": True, "header": "x-user-id"}))
    assert "already the unit header" in found["override.header"]
    found = problems(with_changes(override={"enabled": "yes"}))
    assert "valid boolean" in found["override.enabled"]


def test_fallback_checks() -> None:
    found = problems(with_changes(fallback={"on": ["timeout", "4xx", "timeout"]}))
    assert "'connect_error', 'timeout' or '5xx'" in found["fallback.on.1"]
    found = problems(with_changes(fallback={"on": ["timeout", "timeout"]}))
    assert "duplicate trigger" in found["fallback.on.1"]
    found = problems(with_changes(fallback={"enabled": True, "on": []}))
    assert "at least one trigger" in found["fallback.on"]
    off = ExperimentConfig.model_validate(with_changes(fallback={"enabled": False, "on": []}))
    assert off.fallback.enabled is False


def test_fallback_survives_yaml_safe_load() -> None:
    # yaml.safe_load turns the `on` key into True; configs built that way still validate.
    data = base()
    data["fallback"] = yaml.safe_load("{enabled: true, on: [timeout]}")
    assert ExperimentConfig.model_validate(data).fallback.on == ("timeout",)


def test_shadow_checks() -> None:
    shadow = {"name": "shadow", "model_version": "v4", "endpoints": ["http://127.0.0.1:8104"]}
    config = ExperimentConfig.model_validate(with_changes(shadows=[shadow]))
    assert config.shadows[0].sample_rate == 1.0
    assert config.shadows[0].timeout_ms == 1000
    found = problems(with_changes(shadows=[{**shadow, "sample_rate": 1.5}]))
    assert "less than or equal to 1" in found["shadows.0.sample_rate"]
    found = problems(with_changes(shadows=[{**shadow, "weight": 10}]))
    assert found["shadows.0.weight"].startswith("unknown field")


def test_metrics_checks() -> None:
    found = problems(with_changes(metrics={"guardrails": [{"name": "error_rate"}]}))
    assert "set max_relative_increase" in found["metrics.guardrails.0"]
    found = problems(with_changes(metrics={"guardrails": [
        {"name": "error_rate", "max_relative_increase": 0.5},
        {"name": "error_rate", "max_absolute_increase": 0.01},
    ]}))  # fmt: skip
    assert "duplicate guardrail" in found["metrics.guardrails.1.name"]
    found = problems(with_changes(metrics={"guardrails": [{"name": "cpu", "max_ratio": 2}]}))
    assert "'error_rate'" in found["metrics.guardrails.0.name"]
    found = problems(with_changes(metrics={"guardrails": [{"name": "error_rate",
                                                            "max_ratio": 0.5}]}))  # fmt: skip
    assert "greater than or equal to 1" in found["metrics.guardrails.0.max_ratio"]
    found = problems(with_changes(metrics={"primary": {"name": "ctr", "kind": "median"}}))
    assert "'proportion' or 'mean'" in found["metrics.primary.kind"]
    config = ExperimentConfig.model_validate(with_changes(metrics={
        "primary": {"name": "revenue", "kind": "mean", "source": "reward"},
        "guardrails": [],
    }))  # fmt: skip
    assert config.metrics.primary.direction == "increase"
    assert config.metrics.guardrails == ()


def test_statistics_checks() -> None:
    found = problems(with_changes(statistics={"alpha": 0, "power": 1, "tuning_n": 0,
                                              "test": "mann_whitney"}))  # fmt: skip
    assert set(found) == {
        "statistics.alpha", "statistics.power", "statistics.tuning_n", "statistics.test"
    }  # fmt: skip


def test_ramp_checks() -> None:
    found = problems(with_changes(ramp={"variant": "champion", "steps": [1]}))
    assert "is the champion" in found["ramp.variant"]
    found = problems(with_changes(ramp={"variant": "nope", "steps": [1]}))
    assert found["ramp.variant"].startswith("'nope' is not a variant")
    found = problems(with_changes(ramp={"steps": []}))
    assert "at least 1" in found["ramp.steps"]
    found = problems(with_changes(ramp={"steps": [0, 5, 5, 101]}))
    assert set(found) == {"ramp.steps.0", "ramp.steps.2", "ramp.steps.3"}
    found = problems(with_changes(ramp={"steps": [5], "min_duration_s": 60, "max_duration_s": 30}))
    assert "at least min_duration_s" in found["ramp.max_duration_s"]
    found = problems(with_changes(ramp={"steps": [5], "on_srm": "ignore"}))
    assert "'hold' or 'rollback'" in found["ramp.on_srm"]
    found = problems(with_changes(ramp={"steps": [5], "check_interval_s": 0}))
    assert "greater than 0" in found["ramp.check_interval_s"]


def test_top_level_checks() -> None:
    found = problems({"name": "Demo!", "variants": []})
    assert "lowercase" in found["name"]
    assert found["model"] == "field required"
    assert "at least 1" in found["variants"]
    assert set(found) == {"name", "model", "variants"}  # no extra "seed" noise
    assert problems(with_changes(seed=""))["seed"] == "must not be empty"
    assert "valid string" in problems(with_changes(seed=2026))["seed"]


def test_validate_experiment_raises_config_error() -> None:
    data = copy.deepcopy(base())
    data["variants"][0]["weight"] = 70
    with pytest.raises(ConfigError) as caught:
        validate_experiment(data)
    assert caught.value.problems[0].startswith("variants.2.weight: weights must sum to 100")


def test_primary_difference_defaults_to_the_kind_and_accepts_both() -> None:
    config = ExperimentConfig.model_validate(base())
    assert config.metrics.primary.difference is None
    for difference in ("relative", "absolute"):
        data = with_changes(
            metrics={"primary": {"name": "revenue", "kind": "mean", "difference": difference}}
        )
        assert ExperimentConfig.model_validate(data).metrics.primary.difference == difference


def test_unknown_primary_difference_is_reported_with_file_line_and_field(tmp_path) -> None:
    from experiments.loader import load_experiment

    data = with_changes(metrics={"primary": {"name": "revenue", "kind": "mean"}})
    text = yaml.safe_dump(data, sort_keys=False).replace(
        "    kind: mean\n", "    kind: mean\n    difference: ratio\n"
    )
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    line = text.splitlines().index("    difference: ratio") + 1
    with pytest.raises(ConfigError) as caught:
        load_experiment(path)
    (problem,) = caught.value.problems
    assert problem.startswith(f"{path}:{line}: metrics.primary.difference: "), problem
    assert "relative" in problem and "absolute" in problem


def _protocol_config(protocol: str | None, **variant: object) -> dict[str, object]:
    base: dict[str, object] = {
        "name": "clf",
        "model": "clf",
        "variants": [
            {"name": "champion", "role": "champion", "model_version": "v1",
             "endpoints": ["http://127.0.0.1:8101"], "weight": 50, **variant},
            {"name": "challenger", "role": "challenger", "model_version": "v2",
             "endpoints": ["http://127.0.0.1:8101"], "weight": 50,
             "upstream_model": "clf-v2" if protocol in ("kserve-v1", "open-inference-v2")
             else None},
        ],
    }  # fmt: skip
    if protocol is not None:
        base["protocol"] = protocol
    return base


def test_protocol_defaults_to_abgate_and_round_trips() -> None:
    config = ExperimentConfig.model_validate(_protocol_config(None, upstream_model=None) | {
        "variants": [
            {"name": "champion", "role": "champion", "model_version": "v1",
             "endpoints": ["http://127.0.0.1:8101"], "weight": 100},
        ]
    })  # fmt: skip
    assert config.protocol == "abgate"
    v2 = ExperimentConfig.model_validate(_protocol_config("open-inference-v2"))
    assert v2.protocol == "open-inference-v2"
    assert ExperimentConfig.model_validate(v2.model_dump(mode="json")) == v2


def test_one_server_may_serve_two_versions_under_two_model_names() -> None:
    # The same endpoint for v1 and v2 is fine when the paths name different models...
    ExperimentConfig.model_validate(_protocol_config("open-inference-v2"))
    # ...and refused where the path names none (the same server would answer both).
    with pytest.raises(ConfigError) as caught:
        validate_experiment(_protocol_config("mlflow"))
    assert "variants.1.endpoints.0: http://127.0.0.1:8101 already serves model version v1" in (
        str(caught.value)
    )
    with pytest.raises(ConfigError) as caught:
        validate_experiment(_protocol_config("kserve-v1", upstream_model="clf-v2"))
    assert "(model clf-v2) already serves model version v1" in str(caught.value)


def test_a_base_path_only_where_the_protocol_is_not_abgate() -> None:
    data = _protocol_config("open-inference-v2")
    data["variants"][0]["endpoints"] = ["http://127.0.0.1:8101/seldon/ns/"]  # type: ignore[index]
    config = ExperimentConfig.model_validate(data)
    assert config.variants[0].endpoints == ("http://127.0.0.1:8101/seldon/ns",)
    data["protocol"] = "abgate"
    data["variants"][1]["upstream_model"] = None  # type: ignore[index]
    with pytest.raises(ConfigError) as caught:
        validate_experiment(data)
    assert str(caught.value).startswith("variants.0.endpoints.0: expected http://host[:port]")
    assert "a path is not allowed with protocol abgate" in str(caught.value)
