"""The analysis path stays cheap to import: no scipy or statsmodels behind ``abgate analyze``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
from analysis import frequentist, group_sequential, latency
from analysis import difference, multiple_testing, paired, power, sequential, simulation, srm
from analysis.sufficient import MetricStats, ProportionStats
a, b = MetricStats(100, 100.0, 250.0), MetricStats(100, 110.0, 260.0)
frequentist.welch_test(a, b)
sequential.sequential_test(a, b)
difference.difference_test(a, b, difference="relative")
srm.sample_ratio_mismatch({"a": 100, "b": 110}, {"a": 1, "b": 1})
multiple_testing.holm([0.01, 0.2])
power.minimum_detectable_effect(1.0, 1.0, 1000)
paired.mcnemar_exact(paired.PairedCounts(800, 40, 62, 98))
paired.paired_sequential_test(paired.PairedCounts(800, 40, 62, 98))
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("scipy", "statsmodels"))
print(",".join(heavy))
"""


def test_no_scipy_or_statsmodels_on_the_analysis_path() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.stdout.strip() == ""
