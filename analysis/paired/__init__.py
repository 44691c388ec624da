"""Paired tests: a shadow and the live model scored on the same labelled requests.

When both models answer every request and the label scores both answers, the
requests on which they agree carry no information about which is better: the
accuracy difference shadow − live is (shadow_only − live_only)/n and its
variance comes from the discordant pairs alone,

    Var = ((shadow_only + live_only) − (shadow_only − live_only)²/n) / n²,

which for models that agree on most requests is several times smaller than
that of two independent arms of the same total size.

The tests here, on the four paired counts (``PairedCounts``):

* ``mcnemar_exact`` — the binomial test of the discordant pairs (H0: either
  model is as likely to be the one that is right), as statsmodels'
  ``mcnemar(exact=True)``; ``mcnemar_chi_square`` with or without continuity
  correction, as ``mcnemar(exact=False)``;
* ``paired_z_test`` — the Wald test of the difference, with its interval;
* ``paired_sequential_test`` — the normal-mixture confidence sequence of
  ``analysis.sequential`` on the per-request differences d ∈ {−1, 0, 1}: valid
  however often it is looked at, so a shadow gate may check after every batch;
* ``paired_non_inferiority_test`` / ``paired_harm_test`` — its one-sided forms,
  as the shadow gate asks them.

For numeric outcomes (a value or reward computed from each answer and the
label) the per-request differences' sufficient statistics (n, Σd, Σd²) as a
``MetricStats`` feed ``paired_t_test`` (as scipy's ``ttest_rel``) and
``paired_mean_sequential_test``.

One module per concern: ``counts`` (the four cells), ``mcnemar``, ``accuracy``
(the Wald and sequential tests of the counts), ``means`` (numeric outcomes) and
``results`` (what they share). Import them from here.
"""

from __future__ import annotations

from analysis.paired.accuracy import (
    paired_harm_test,
    paired_non_inferiority_test,
    paired_sequential_p_values,
    paired_sequential_test,
    paired_z_p_values,
    paired_z_test,
)
from analysis.paired.counts import PairedCounts, paired_difference
from analysis.paired.mcnemar import McNemarResult, mcnemar_chi_square, mcnemar_exact
from analysis.paired.means import paired_mean_sequential_test, paired_t_test
from analysis.paired.results import (
    MCNEMAR_CHI2,
    MCNEMAR_EXACT,
    PAIRED_SEQUENTIAL_CS,
    PAIRED_T,
    PAIRED_Z,
)

__all__ = [
    "MCNEMAR_CHI2",
    "MCNEMAR_EXACT",
    "PAIRED_SEQUENTIAL_CS",
    "PAIRED_T",
    "PAIRED_Z",
    "McNemarResult",
    "PairedCounts",
    "mcnemar_chi_square",
    "mcnemar_exact",
    "paired_difference",
    "paired_harm_test",
    "paired_mean_sequential_test",
    "paired_non_inferiority_test",
    "paired_sequential_p_values",
    "paired_sequential_test",
    "paired_t_test",
    "paired_z_p_values",
    "paired_z_test",
]
