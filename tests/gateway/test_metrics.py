"""The gateway's /metrics text, rendered in process and read with prometheus_client's parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from experiments.config import ExperimentConfig
from gateway.hotpath import HotPath
from gateway.live import LiveExperiments
from gateway.metrics import render_metrics
from gateway.recorder import Recorder
from tests.gateway.test_drift_sampling import REFERENCE, config


def scrape(experiments: LiveExperiments, recorder: Recorder) -> tuple[dict[str, str], dict]:
    text = render_metrics(experiments, recorder, HotPath(experiments, recorder, None))
    types, values = {}, {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return types, values


def gateway_state() -> tuple[LiveExperiments, Recorder, ExperimentConfig]:
    experiments = LiveExperiments()
    experiments.drift_references["demo"] = {"v1": REFERENCE}
    experiments.ramp_states["demo"] = {"step": 2, "status": "running"}
    demo = config({"champion": "v1", "canary": "v2"})
    experiments.install(demo, 3)
    return experiments, Recorder(None), demo


def test_every_family_is_typed_and_ramp_and_weights_show() -> None:
    experiments, recorder, _ = gateway_state()
    types, values = scrape(experiments, recorder)
    assert "unknown" not in types.values(), types
    assert values[("abgate_ramp_step", (("experiment", "demo"),))] == 2
    assert values[("abgate_ramp_running", (("experiment", "demo"),))] == 1
    weight = ("abgate_variant_weight_ratio", (("experiment", "demo"), ("variant", "canary")))
    assert values[weight] == 0.1
    assert values[("abgate_config_version", (("experiment", "demo"),))] == 3


def test_drift_scores_move_as_sampled_requests_come_in() -> None:
    experiments, recorder, _ = gateway_state()
    live = experiments.by_name["demo"]
    assert live.config.statistics.drift_min_samples == 200
    assert live.drift is not None and set(live.drift) == {"champion"}  # v2 has no reference
    bins = live.drift["champion"]
    psi = ("abgate_feature_drift_psi",
           (("experiment", "demo"), ("feature", "f0"), ("variant", "champion")))  # fmt: skip
    samples = ("abgate_drift_samples_total", (("experiment", "demo"), ("variant", "champion")))
    alert = ("abgate_drift_alert",
             (("check", "f0"), ("experiment", "demo"), ("variant", "champion")))  # fmt: skip
    # fewer samples than drift_min_samples: counted, but no PSI (a few samples are noise)
    for _ in range(10):
        recorder.record_drift("demo", bins.fields_for([3.0, 0.0], {"prediction": 0}), 100.0)
    _, values = scrape(experiments, recorder)
    assert values[samples] == 10
    assert psi not in values and values[alert] == 0
    recorder.aggregator.drain()  # start again from nothing
    # one value per f0 quartile, f1 split evenly: matches the reference, PSI 0
    for f0, f1 in [(-2.0, 0.0), (-0.5, 20.0), (0.5, 0.0), (2.0, 20.0)] * 60:
        recorder.record_drift("demo", bins.fields_for([f0, f1], {"prediction": 0}), 100.0)
    _, values = scrape(experiments, recorder)
    assert values[samples] == 240
    assert values[psi] == 0.0 and values[alert] == 0
    # 240 more, every f0 in the top bin: PSI well over 0.2, an alert on 480 >= 200 samples
    for _ in range(240):
        recorder.record_drift("demo", bins.fields_for([3.0, 0.0], {"prediction": 0}), 100.0)
    _, values = scrape(experiments, recorder)
    assert values[samples] == 480
    assert values[psi] > 0.2 and values[alert] == 1
    shift = ("abgate_feature_drift_psi",
             (("experiment", "demo"), ("feature", "f1"), ("variant", "champion")))  # fmt: skip
    assert values[shift] < values[psi]
    predicted = ("abgate_prediction_drift_psi",
                 (("experiment", "demo"), ("prediction", "predicted_class"),
                  ("variant", "champion")))  # fmt: skip
    assert values[predicted] > 0.2  # every answer class 0, against 60/40 in the reference
