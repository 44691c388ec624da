"""Fuzzing the experiment loader: any text gives a config or ``FILE:LINE`` problems, quickly.

Inputs mix nested anchors and aliases (the shapes of YAML bombs), deep flow
nesting and random YAML punctuation. Each input has a time bound (hypothesis'
``deadline``, generous for a shared machine: a bomb expanded without bound takes
minutes), and the run is small and derandomized to keep its CPU modest.
"""

from __future__ import annotations

import re
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import ConfigError
from experiments.config import ExperimentConfig
from experiments.loader import parse_experiment

PROBLEM = re.compile(r"f\.yaml:(\d+): \S")


@st.composite
def alias_nests(draw: st.DrawFn) -> str:
    """Anchors each listing the previous one several times, used somewhere in a config."""
    levels = draw(st.integers(1, 12))
    width = draw(st.integers(1, 12))
    as_mapping = draw(st.booleans())
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels + 1):
        items = [f"*a{i - 1}"] * width
        if as_mapping:
            body = "{" + ", ".join(f"k{j}: {item}" for j, item in enumerate(items)) + "}"
        else:
            body = "[" + ", ".join(items) + "]"
        lines.append(f"a{i}: &a{i} {body}")
    field = draw(st.sampled_from(["variants", "metrics", "unit", "name", "statistics"]))
    lines += ["name: fuzz", "model: demo", f"{field}: *a{levels}"]
    return "\n".join(draw(st.permutations(lines)) if draw(st.booleans()) else lines) + "\n"


nesting = st.builds(lambda n, open_, close: open_ * n + close * n,
                    st.integers(0, 5000), st.sampled_from(["[", "{", "- "]),
                    st.sampled_from(["]", "}", ""]))  # fmt: skip
punctuation = st.text(alphabet="[]{}&*:-,#!|>'\"\n ab0", max_size=400)


@settings(
    max_examples=150,
    derandomize=True,
    deadline=timedelta(seconds=3),
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.one_of(alias_nests(), nesting, punctuation))
def test_the_loader_answers_any_text_with_a_config_or_located_problems(text: str) -> None:
    try:
        config = parse_experiment(text, "f.yaml")
    except ConfigError as exc:
        assert exc.problems, str(exc)
        last = text.count("\n") + 1
        for problem in exc.problems:
            found = PROBLEM.match(problem)
            assert found is not None, problem
            assert 1 <= int(found.group(1)) <= last, problem
    else:
        assert isinstance(config, ExperimentConfig)
