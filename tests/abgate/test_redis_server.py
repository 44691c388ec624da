from __future__ import annotations

import os
from pathlib import Path

import pytest
import redis

from abgate.redis_server import (
    EmbeddedRedis,
    find_redis_binary,
    redis_for,
    start_redis,
    start_redis_cluster,
)
from core.errors import RedisUnavailable


def test_binary_is_a_real_server() -> None:
    binary = find_redis_binary()
    assert binary.name in {"redis-server", "valkey-server"}
    assert os.access(binary, os.X_OK)


def test_session_fixture_is_real_redis(redis_server: EmbeddedRedis, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    assert client.ping()
    info = client.info("server")
    assert int(info["process_id"]) == redis_server.pid
    client.set("k", "v")
    assert client.get("k") == b"v"


def test_flushed_between_tests(redis_url: str) -> None:
    assert redis.Redis.from_url(redis_url).get("k") is None


def test_start_and_stop_by_pid_without_persistence(tmp_path) -> None:
    server = start_redis(data_dir=tmp_path)
    client = redis.Redis.from_url(server.url)
    assert client.config_get("appendonly")["appendonly"] == "no"
    assert client.config_get("save")["save"] == ""
    pid = server.pid
    server.stop()
    assert server.process.returncode is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_persistence_survives_restart(tmp_path) -> None:
    server = start_redis(data_dir=tmp_path, persistence=True)
    client = redis.Redis.from_url(server.url)
    assert client.config_get("appendonly")["appendonly"] == "yes"
    client.set("kept", "1")
    server.stop()
    again = start_redis(data_dir=tmp_path, persistence=True)
    try:
        assert redis.Redis.from_url(again.url).get("kept") == b"1"
    finally:
        again.stop()


def test_redis_for_prefers_given_url() -> None:
    with redis_for("redis://example.invalid:1/0") as url:
        assert url == "redis://example.invalid:1/0"


def test_redis_for_starts_and_stops_embedded() -> None:
    with redis_for(None) as url:
        assert redis.Redis.from_url(url).ping()
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()


def test_failed_start_reports_reason(tmp_path) -> None:
    with pytest.raises(RedisUnavailable, match="exited"):
        start_redis(data_dir=tmp_path, extra_args=("--no-such-option", "x"))


def test_cluster_of_three_masters_serves_every_slot_and_stops_by_pid() -> None:
    cluster = start_redis_cluster(masters=3)
    try:
        pids = [node.pid for node in cluster.nodes]
        client = redis.Redis.from_url(cluster.url)
        info = client.cluster("info")
        assert info["cluster_state"] == "ok" and info["cluster_known_nodes"] == "3"
        assert info["cluster_slots_assigned"] == "16384" and info["cluster_size"] == "3"
        client.close()
    finally:
        cluster.stop()
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)
    assert not cluster.root.exists()
