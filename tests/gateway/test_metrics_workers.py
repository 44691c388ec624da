"""``/metrics`` of ``abgate gateway --workers 2``: one view of the gateway, whichever
process answers the scrape, and that view survives a process being replaced."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import orjson
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from abgate.processes import Child
from gateway import metrics_dir
from gateway.metrics_dir import mark_process_dead, prepare, publish, read_all
from gateway.process_figures import HttpFigures, ProcessFigures, ResourceFigures, combine
from tests.conftest import port_of, start_gateway, write_config
from tests.waiting import wait_for

ROW = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
REQUESTS = 120
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> tuple[Samples, dict[str, str]]:
    """One scrape on a new connection (so the kernel may pick either process)."""
    answer = requests.get(url + "/metrics", headers={"Connection": "close"}, timeout=10)
    assert answer.status_code == 200, answer.text
    samples: Samples = {}
    types = {}
    for family in text_string_to_metric_families(answer.text):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples, types


def total(samples: Samples, name: str) -> float:
    return sum(value for (sample, _), value in samples.items() if sample == name)


def monotone_series(samples: Samples, types: dict[str, str]) -> Samples:
    """The samples of counters and histograms: none may ever go down."""
    kinds = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
    keep = {}
    for key, value in samples.items():
        for family, kind in types.items():
            if any(key[0] == family + suffix for suffix in kinds.get(kind, ())):
                keep[key] = value
    return keep


def child_pids(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


def ten_scrapes_in_a_row(url: str, expected: int) -> None:
    previous: Samples = {}
    for i in range(10):
        samples, types = scrape(url)
        assert total(samples, "abgate_requests_total") == expected, f"scrape {i}"
        assert total(samples, "abgate_request_duration_seconds_count") == expected
        series = monotone_series(samples, types)
        went_down = {k: (previous[k], v) for k, v in series.items() if v < previous.get(k, v)}
        assert not went_down, f"scrape {i}: counters went down {went_down}"
        assert set(previous) <= set(series), f"scrape {i}: series vanished"
        previous = series


@pytest.mark.integration
@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="needs SO_REUSEPORT")
def test_every_scrape_of_two_processes_shows_the_whole_gateway(
    tmp_path: Path, redis_url: str, demo_workers: dict[str, Child]
) -> None:
    ports = {name: port_of(child) for name, child in demo_workers.items()}
    config = write_config(tmp_path / "w.yaml", ports, {"champion": 50, "challenger": 50})
    shared = tmp_path / "metrics"
    shared.mkdir()
    # An earlier run's file: the gateway must empty the directory when it starts.
    stale = ProcessFigures(pid=999_999, outcomes={"demo": {"champion:requests": 1000.0}})
    (shared / "999999.json").write_bytes(orjson.dumps(stale))
    gateway = start_gateway(
        config, redis_url, "--server", "abgate", "--workers", "2", ABGATE_METRICS_DIR=str(shared)
    )
    try:
        assert gateway.url is not None
        first = wait_for(lambda: len(pids := child_pids(gateway.pid)) == 2 and pids, timeout=30)
        assert first, "expected two server processes"
        for i in range(REQUESTS):  # a new connection each: the kernel spreads them over both
            answer = requests.post(
                gateway.url + "/predict",
                json={"features": ROW},
                headers={"X-Request-ID": f"m-{i}", "Connection": "close"},
                timeout=10,
            )
            assert answer.status_code == 200, answer.text
        # A sibling's figures reach a scrape within a second or so.
        seen = wait_for(
            lambda: total(scrape(gateway.url)[0], "abgate_requests_total") == REQUESTS,
            timeout=60,
        )
        assert seen, f"no scrape showed the {REQUESTS} requests of both processes"
        ten_scrapes_in_a_row(gateway.url, REQUESTS)

        # One process stops (and is replaced): its counts stay, its gauges go.
        gone = min(first)
        os.kill(gone, signal.SIGTERM)
        replaced = wait_for(
            lambda: len(pids := child_pids(gateway.pid)) == 2 and gone not in pids and pids,
            timeout=60,
        )
        assert replaced, "the supervisor did not replace the stopped process"
        assert wait_for(lambda: any(shared.glob(f"dead-{gone}-*.json")), timeout=30)
        assert wait_for(
            lambda: all((shared / f"{pid}.json").exists() for pid in replaced), timeout=30
        )
        ten_scrapes_in_a_row(gateway.url, REQUESTS)
    finally:
        assert gateway.stop(timeout=30) == 0


def figures(pid: int, requests: float, alive: bool, *, rss: float, pending: int) -> ProcessFigures:
    return ProcessFigures(
        pid=pid,
        outcomes={"demo": {"champion:requests": requests}},
        feedback={"demo": {"counted": 2}},
        feedback_pending={"demo": pending},
        pending_outcomes=3,
        last_flush=100.0 + pid,
        http=HttpFigures(open_connections=4, refused=1, timed_out={"head": 1}),
        resources=ResourceFigures(cpu_seconds=1.5, resident_bytes=rss, start_time=50.0 + pid),
        alive=alive,
    )


def test_counters_add_over_every_process_and_gauges_over_live_ones() -> None:
    whole = combine(
        [
            figures(1, 10, True, rss=100, pending=5),
            figures(2, 20, True, rss=200, pending=7),
            figures(3, 30, False, rss=400, pending=9),  # exited
        ],
        pid=1,
    )
    assert whole.outcomes == {"demo": {"champion:requests": 60}}
    assert whole.feedback == {"demo": {"counted": 6}}
    assert whole.http == HttpFigures(open_connections=8, refused=3, timed_out={"head": 3})
    assert whole.resources is not None
    assert whole.resources.cpu_seconds == 4.5 and whole.resources.resident_bytes == 300
    assert whole.resources.start_time == 51.0
    assert whole.pending_outcomes == 6
    assert whole.feedback_pending == {"demo": 7}  # every replica's reading: the largest
    assert whole.last_flush == 101.0  # the oldest live one: the worst lag


def test_a_process_marked_dead_keeps_its_counters_in_the_directory(tmp_path: Path) -> None:
    shared = prepare(str(tmp_path / "m"))
    publish(shared, figures(11, 10, True, rss=1, pending=0))
    publish(shared, figures(12, 20, True, rss=1, pending=0))
    mark_process_dead(shared, 12)
    read = {f.pid: f.alive for f in read_all(shared, skip_pid=0)}
    assert read == {11: True, 12: False}
    assert [f.pid for f in read_all(shared, skip_pid=11)] == [12]
    assert prepare(str(shared)) == shared and not list(shared.iterdir())


def test_a_process_reaped_while_its_file_is_read_still_counts_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = prepare(str(tmp_path / "m"))
    publish(shared, figures(11, 10, True, rss=1, pending=0))
    publish(shared, figures(12, 20, True, rss=1, pending=0))
    real_read = metrics_dir._read

    def reaped_meanwhile(path: Path) -> ProcessFigures | None:
        if path.name == "12.json":
            mark_process_dead(shared, 12)  # the supervisor, between listing and reading
        return real_read(path)

    monkeypatch.setattr(metrics_dir, "_read", reaped_meanwhile)
    read = sorted((f.pid, f.alive) for f in read_all(shared, skip_pid=0))
    assert read == [(11, True), (12, False)]
    whole = combine(read_all(shared, skip_pid=0), pid=0)
    assert whole.outcomes == {"demo": {"champion:requests": 30}}
