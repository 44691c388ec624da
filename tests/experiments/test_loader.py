"""Loading experiment YAML: every problem as ``FILE:LINE: field.path: what was expected``.

Each invalid fixture marks the lines that must be reported with a comment
``# expect: field.path | phrase`` (``-`` for no path), so the expected file,
line and field come from the fixture text, not from the code under test.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.errors import ConfigError
from experiments import loader
from experiments.config import ExperimentConfig
from experiments.loader import (
    canonical_json,
    dump_experiment,
    experiment_from_json,
    load_experiment,
    parse_experiment,
)

FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLES = Path(__file__).resolve().parents[2] / "experiments"
_MARKER = re.compile(r"#\s*expect:\s*(\S+)\s*\|\s*(.+?)\s*$")


def expected_problems(path: Path) -> list[tuple[int, str, str]]:
    """(line, field path, phrase) of every ``# expect:`` marker in a fixture."""
    found = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        match = _MARKER.search(line)
        if match:
            found.append((number, match.group(1), match.group(2)))
    return found


def problems_of(path: Path | str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_experiment(path)
    return caught.value.problems


@pytest.mark.parametrize(
    "fixture",
    sorted(p.name for p in FIXTURES.glob("*.yaml")),
)
def test_invalid_fixture_reports_file_line_and_field(fixture: str) -> None:
    path = FIXTURES / fixture
    expected = expected_problems(path)
    assert expected, f"{fixture} has no '# expect:' marker"
    problems = problems_of(path)
    assert len(problems) == len(expected), problems
    for line, field, phrase in expected:
        prefix = f"{path}:{line}: " if field == "-" else f"{path}:{line}: {field}: "
        matching = [p for p in problems if p.startswith(prefix)]
        assert len(matching) == 1, (prefix, problems)
        assert phrase in matching[0], (phrase, matching[0])


EXPECTED_FIXTURES = {
    "weights_not_100.yaml",
    "unknown_ramp_variant.yaml",
    "ramp_champion.yaml",
    "ramp_steps.yaml",
    "ramp_shadow.yaml",
    "ramp_shadow_reward.yaml",
    "ramp_shadow_metric.yaml",
    "duplicate_names.yaml",
    "unknown_fields.yaml",
    "bad_urls.yaml",
    "negative_timeout.yaml",
    "missing_champion.yaml",
    "duplicate_keys.yaml",
    "syntax_error.yaml",
    "unit_and_override.yaml",
    "drift_settings.yaml",
    "guardrail_limits.yaml",
    "protocol_fields.yaml",
    "protocol_endpoints.yaml",
}


def test_every_listed_invalid_case_has_a_fixture() -> None:
    assert {p.name for p in FIXTURES.glob("*.yaml")} == EXPECTED_FIXTURES


def test_weight_problem_reads_as_documented() -> None:
    path = FIXTURES / "weights_not_100.yaml"
    assert problems_of(path) == [
        f"{path}:14: variants.1.weight: weights must sum to 100, got 95 (champion 90 + canary 5)"
    ]


def test_problems_use_the_given_filename_and_come_sorted_by_line() -> None:
    text = (FIXTURES / "unknown_fields.yaml").read_text()
    with pytest.raises(ConfigError) as caught:
        parse_experiment(text, "experiments/bad.yaml")
    problems = caught.value.problems
    assert [p.split(":")[:2] for p in problems] == [
        ["experiments/bad.yaml", "4"],
        ["experiments/bad.yaml", "11"],
    ]
    assert caught.value.status_code == 422


def test_missing_field_points_at_its_parent() -> None:
    text = """\
name: x
model: demo
variants:
  - name: champion
    role: champion
    model_version: v1
    endpoints: ["http://127.0.0.1:8101"]
"""
    with pytest.raises(ConfigError) as caught:
        parse_experiment(text, "f.yaml")
    assert caught.value.problems == ["f.yaml:4: variants.0.weight: field required"]


@pytest.mark.parametrize(
    ("text", "line", "phrase"),
    [
        ("name: x\nvariants: [1\n", 3, "YAML syntax error"),
        ("name: x\n  model: y\n", 2, "mapping values are not allowed"),
        ("name: x\nmodel: \x01\n", 2, "special characters"),
        ("---\nname: a\n---\nname: b\n", 3, "single document"),
    ],
)
def test_yaml_syntax_errors_give_file_and_line(text: str, line: int, phrase: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_experiment(text, "s.yaml")
    [problem] = caught.value.problems
    assert problem.startswith(f"s.yaml:{line}: YAML syntax error: ")
    assert phrase in problem


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "s.yaml:1: empty file"),
        ("# only a comment\n", "s.yaml:1: empty file"),
        ("- name: x\n", "s.yaml:1: expected a mapping of experiment fields, got a list"),
        ("\n\njust text\n", "s.yaml:3: expected a mapping of experiment fields, got 'just text'"),
    ],
)
def test_a_file_that_is_not_a_mapping_is_refused(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_experiment(text, "s.yaml")
    assert caught.value.problems[0].startswith(expected)


def test_unsupported_yaml_constructs_are_refused_with_their_line() -> None:
    text = """\
base: &base {role: champion}
name: x
model: !custom demo
merged:
  <<: *base
loop: &loop [*loop]
"""
    with pytest.raises(ConfigError) as caught:
        parse_experiment(text, "u.yaml")
    problems = caught.value.problems
    assert any(p.startswith("u.yaml:3: model: unsupported YAML value") for p in problems)
    assert any(p.startswith("u.yaml:5: merged: YAML merge keys (<<)") for p in problems)
    assert any(p.startswith("u.yaml:6: loop.0: recursive YAML alias") for p in problems)


def test_a_bare_on_key_stays_a_field_name() -> None:
    # yaml.safe_load would read `on:` as the boolean True.
    text = (EXAMPLES / "demo.yaml").read_text()
    assert "fallback: {enabled: true, on: [" in text
    config = parse_experiment(text, "demo.yaml")
    assert config.fallback.on == ("connect_error", "timeout", "5xx")
    assert True in yaml.safe_load(text)["fallback"]


def test_unreadable_or_oversized_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_experiment(tmp_path / "missing.yaml")
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * (1 << 20) + "\n")
    with pytest.raises(ConfigError, match="over"):
        load_experiment(big)
    binary = tmp_path / "latin1.yaml"
    binary.write_bytes(b"name: demo\ndescription: caf\xe9\n")
    assert problems_of(binary) == [f"{binary}:2: not UTF-8 text"]


@pytest.mark.parametrize("example", ["demo.yaml", "canary.yaml", "shadow-canary.yaml"])
def test_examples_are_valid(example: str) -> None:
    config = load_experiment(EXAMPLES / example)
    assert config.name == example.removesuffix(".yaml")
    assert config.champion.model_version == "v1"


def test_demo_example_is_what_the_demo_routes() -> None:
    config = load_experiment(EXAMPLES / "demo.yaml")
    assert config.weights == {"champion": 80, "challenger": 10, "canary": 10}
    assert [v.model_version for v in config.variants] == ["v1", "v2", "v3"]
    assert [v.endpoints for v in config.variants] == [
        ("http://127.0.0.1:8101",),
        ("http://127.0.0.1:8102",),
        ("http://127.0.0.1:8103",),
    ]
    assert (config.unit.source, config.unit.name) == ("header", "X-User-ID")


def test_canary_example_has_the_ramp_plan() -> None:
    config = load_experiment(EXAMPLES / "canary.yaml")
    assert config.ramp is not None
    assert config.ramp.steps == (10, 25, 50)  # 100 % is the promotion, not a step
    assert config.ramp.on_expiry == "rollback"
    assert config.ramp_variant is not None and config.ramp_variant.name == "canary"
    assert {v.role for v in config.variants} == {"champion", "canary"}


@pytest.mark.parametrize("example", ["demo.yaml", "canary.yaml", "shadow-canary.yaml"])
def test_dump_round_trips(example: str) -> None:
    config = load_experiment(EXAMPLES / example)
    text = dump_experiment(config)
    assert parse_experiment(text, "dumped.yaml") == config
    assert dump_experiment(parse_experiment(text, "dumped.yaml")) == text


@pytest.mark.parametrize("example", ["demo.yaml", "canary.yaml", "shadow-canary.yaml"])
def test_json_forms_round_trip(example: str) -> None:
    config = load_experiment(EXAMPLES / example)
    stored = canonical_json(config)
    assert experiment_from_json(stored) == config
    assert ExperimentConfig.model_validate(config.model_dump(mode="json")) == config
    assert ExperimentConfig.model_validate(json.loads(stored)) == config
    # Canonical: key order and whitespace do not depend on how the config was built.
    assert canonical_json(ExperimentConfig.model_validate(json.loads(stored))) == stored
    assert stored == json.dumps(json.loads(stored), sort_keys=True, separators=(",", ":"))


def test_bad_stored_json_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not JSON"):
        experiment_from_json("{")
    with pytest.raises(ConfigError, match="not a JSON object"):
        experiment_from_json("[]")
    with pytest.raises(ConfigError) as caught:
        experiment_from_json('{"name": "x", "model": "demo", "variants": []}')
    assert caught.value.problems == ["variants: expected at least 1 item(s), got a list of 0"]


def test_a_last_step_of_100_is_the_promotion_and_a_plan_needs_a_step_below_it() -> None:
    from experiments.ramp_plan import Ramp

    assert Ramp(steps=(10, 50, 100)).served_steps == (10.0, 50.0)
    with pytest.raises(Exception, match="100 is the promotion"):
        Ramp(steps=(100,))


def billion_laughs(levels: int, width: int) -> str:
    """Nested aliases: ``width ** levels`` list items once expanded, in a couple of KB."""
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels + 1)]
    return "\n".join([*lines, "name: bomb", "model: demo", f"variants: *a{levels}"]) + "\n"


def test_a_yaml_alias_bomb_is_refused_after_a_bounded_number_of_nodes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = billion_laughs(levels=9, width=10)  # 10**9 items expanded
    assert len(text) < 2000
    reads = 0
    value = loader._NodeReader.value

    def counted(self: Any, node: yaml.Node, loc: Any) -> Any:
        nonlocal reads
        reads += 1
        # A loader that expands without bound would run for minutes: stop it here.
        assert reads <= 1_000_000, "aliases expanded past any bound"
        return value(self, node, loc)

    monkeypatch.setattr(loader._NodeReader, "value", counted)
    with pytest.raises(ConfigError) as caught:
        parse_experiment(text, "bomb.yaml")
    [problem] = caught.value.problems
    assert re.fullmatch(
        r"bomb\.yaml:(\d+): a\d+\.\d+: YAML aliases expand to over \d+ nodes", problem
    )
    line = int(problem.split(":")[1])
    assert "*a" in text.splitlines()[line - 1]  # the line of an alias being expanded
    assert reads <= loader.MAX_ALIAS_NODES + 200  # the file's own nodes, then the budget


def test_aliases_within_the_bound_still_load() -> None:
    text = (EXAMPLES / "demo.yaml").read_text()
    # An anchored block of variant fields reused: the config reads as if written out.
    anchored = text.replace("    timeout_ms: 1000", "    timeout_ms: *timeout")
    anchored = anchored.replace("    timeout_ms: *timeout", "    timeout_ms: &timeout 1000", 1)
    anchored = anchored.replace(
        "fallback: {enabled: true, on: [connect_error, timeout, 5xx]}",
        "fallback: &fallback {enabled: true, on: [connect_error, timeout, 5xx]}",
    )
    assert anchored.count("*timeout") == 2 and "&fallback" in anchored
    assert parse_experiment(anchored, "a.yaml") == parse_experiment(text, "demo.yaml")


@pytest.mark.parametrize(
    "text",
    [
        "x: " + "[" * 100_000 + "]" * 100_000,
        "x:\n" + "".join(" " * i + "- \n" for i in range(1, 200)),
    ],
)
def test_deep_nesting_is_refused_with_a_line(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_experiment(text, "deep.yaml")
    assert any(
        re.match(r"deep\.yaml:\d+: .*(nested over \d+ levels|YAML syntax error)", p)
        for p in caught.value.problems
    ), caught.value.problems
