"""Statistics on sufficient statistics: pure functions, no I/O.

Where things live:

- ``sufficient``: per-variant sufficient statistics (``MetricStats``,
  ``ProportionStats``, ``LatencyHistogram``) and their array form ``Moments``.
- ``frequentist``: Welch's t-test (fixed horizon), as gbstats runs it.
- ``sequential``: confidence sequences for continuous monitoring and ramp
  guardrails.
- ``difference``: what verdicts test (the difference treatment − champion) and
  the relative lift reported beside it (Fieller's interval, when it is defined).
- ``srm``: sample-ratio mismatch.
- ``multiple_testing``: Holm and Benjamini–Hochberg adjustments.
- ``power``: power, minimum detectable effect, sample size, time to decision.
- ``latency``: p99 latency of a variant against the champion.
- ``group_sequential``: alpha-spending boundaries for a few planned looks.
- ``simulation``: calibration of the tests by seeded simulation.
- ``effect``/``results``: the lift formulas and the result type they share.
"""
