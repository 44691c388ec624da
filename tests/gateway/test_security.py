"""Security with real processes: admin tokens, no request-chosen upstreams, safe artifacts.

The container's non-root user is checked with the Dockerfile (deploy), not here.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from abgate.processes import Child, abgate_argv, start_child, wait_http_ok
from abgate.redis_server import free_port
from gateway.exposure import exposure_warning
from model_workers.registry import ModelRegistry
from tests.conftest import ADMIN_TOKEN, port_of, start_gateway, write_config

pytestmark = pytest.mark.integration

ROW = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]


@contextlib.contextmanager
def logged_gateway(
    config: Path, redis_url: str, log: Path, *extra: str, **env: str
) -> Iterator[Child]:
    """``abgate gateway`` with its output in ``log`` (start_gateway discards it)."""
    port = free_port()
    environment = {"REDIS_URL": redis_url, "ABGATE_LOG_LEVEL": "debug", **env}
    with log.open("w") as sink:
        child = start_child(
            "gateway",
            abgate_argv("gateway", "--port", str(port), "--config", str(config), *extra),
            url=f"http://127.0.0.1:{port}",
            env=environment,
            log=sink,
        )
        try:
            wait_http_ok(f"{child.url}/health", child=child, timeout=60)
            yield child
        finally:
            child.stop()
            assert child.process.stdout is not None
            child.process.stdout.close()


@pytest.fixture
def config(tmp_path: Path, demo_workers: dict[str, Child]) -> Path:
    return write_config(
        tmp_path / "demo.yaml", {"champion": port_of(demo_workers["champion"])}, {"champion": 100}
    )


# --- admin -------------------------------------------------------------------------


def test_admin_rejects_missing_and_wrong_tokens_and_never_logs_them(
    tmp_path: Path, redis_url: str, config: Path
) -> None:
    wrong = "wrong-token-0123456789"
    log = tmp_path / "gateway.log"
    with logged_gateway(config, redis_url, log, ABGATE_ADMIN_TOKEN=ADMIN_TOKEN) as gateway:
        url = gateway.url + "/admin/experiments"
        assert requests.get(url, timeout=10).status_code == 401
        for header in (f"Bearer {wrong}", wrong, f"Basic {ADMIN_TOKEN}", f"Bearer {ADMIN_TOKEN}x"):
            answer = requests.get(url, headers={"Authorization": header}, timeout=10)
            assert answer.status_code == 401, header
            assert answer.json() == {"status": "error", "error": "missing or wrong bearer token"}
        auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        assert requests.get(url, headers=auth, timeout=10).status_code == 200
        # A failing change with the right token: errors get logged, the token must not.
        bad = requests.put(url + "/demo/weights", json={"weights": {"x": 1}}, headers=auth)
        assert bad.status_code == 422
        assert gateway.stop() == 0
    text = log.read_text()
    assert "abgate gateway on http://" in text  # the log was written at debug level
    assert ADMIN_TOKEN not in text and wrong not in text


def test_no_token_on_a_public_address_turns_admin_off_and_warns(
    tmp_path: Path, redis_url: str, config: Path
) -> None:
    log = tmp_path / "gateway.log"
    public = ("--host", "0.0.0.0")
    with logged_gateway(
        config, redis_url, log, *public, ABGATE_ADMIN_TOKEN="", ABGATE_LOG_LEVEL="info"
    ) as gateway:
        for token in (None, ADMIN_TOKEN, ""):
            headers = {} if token is None else {"Authorization": f"Bearer {token}"}
            answer = requests.get(gateway.url + "/admin/experiments", headers=headers, timeout=10)
            assert answer.status_code == 403
            assert "ABGATE_ADMIN_TOKEN" in answer.json()["error"]
        # Nothing else that shows recorded data is open without a token on this address.
        for path in ("/dashboard/data", "/dashboard/data?experiment=demo"):
            assert requests.get(gateway.url + path, timeout=10).status_code in (401, 403, 404)
        routed = requests.post(gateway.url + "/predict", json={"features": ROW}, timeout=10)
        assert routed.status_code == 200  # routing itself is on
    assert "bound to 0.0.0.0 without ABGATE_ADMIN_TOKEN: the admin API is off" in log.read_text()


@pytest.mark.parametrize(
    ("host", "token", "warns"),
    [
        ("0.0.0.0", None, True),
        ("::", "", True),
        ("10.1.2.3", None, True),
        ("gateway.internal", None, True),
        ("0.0.0.0", "s3cret", False),
        ("127.0.0.1", None, False),
        ("::1", None, False),
        ("localhost", None, False),
    ],
)
def test_admin_exposure_warning(host: str, token: str | None, warns: bool) -> None:
    from core.settings import Settings

    warning = exposure_warning(Settings(admin_token=token, host=host))
    assert (warning is not None) == warns
    if warning is not None:
        assert host in warning and "ABGATE_ADMIN_TOKEN" in warning


# --- upstreams come from the config only --------------------------------------------


class Decoy:
    """A listener that counts every connection made to it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.running = True
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.running = False
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def decoy() -> Iterator[Decoy]:
    listener = Decoy()
    yield listener
    listener.close()


def raw_post(port: int, target: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"POST {target} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    lines += ["Content-Type: application/json", f"Content-Length: {len(body)}", "Connection: close"]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_no_request_can_choose_the_upstream(redis_url: str, config: Path, decoy: Decoy) -> None:
    gateway = start_gateway(config, redis_url)
    elsewhere = f"127.0.0.1:{decoy.port}"
    url = f"http://{elsewhere}"
    body = (
        b'{"features": %s, "url": "%s/predict", "endpoint": "%s", "upstream": "%s", '
        b'"host": "%s"}' % (str(ROW).encode(), url.encode(), url.encode(), url.encode(),
                            elsewhere.encode())
    )  # fmt: skip
    tricks = [
        ("/predict", {"Host": elsewhere}),
        ("/predict", {"Host": "test", "X-Forwarded-Host": elsewhere,
                      "Forwarded": f"host={elsewhere}"}),
        ("/predict", {"Host": "test", "X-Forwarded-For": "127.0.0.1", "X-Real-IP": "127.0.0.1",
                      "X-Original-URL": f"{url}/predict", "X-Rewrite-URL": f"{url}/predict"}),
        (f"{url}/predict", {"Host": elsewhere}),  # absolute-form request target
        (f"http://{elsewhere}@127.0.0.1/predict", {"Host": "test"}),
        ("/v1/demo/predict", {"Host": elsewhere, "X-Variant": "canary", "X-Upstream": url}),
    ]  # fmt: skip
    try:
        for target, headers in tricks:
            answer = raw_post(port_of(gateway), target, headers, body)
            head, _, payload = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), (target, headers, answer[:300])
            assert b'"model_version":"v1"' in payload  # served by the configured champion
    finally:
        gateway.stop()
    assert decoy.connections == 0


# --- model artifacts ---------------------------------------------------------------


def test_a_worker_refuses_a_tampered_artifact_and_does_not_start(
    tmp_path: Path, demo_registry: ModelRegistry
) -> None:
    root = tmp_path / "models"
    shutil.copytree(demo_registry.root / "demo" / "v1", root / "demo" / "v1")
    artifact = root / "demo" / "v1" / "model.skops"
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))
    log = tmp_path / "worker.log"
    port = free_port()
    with log.open("w") as sink:
        worker = start_child(
            "worker",
            abgate_argv("worker", "--model", "demo", "--version", "v1", "--port", str(port),
                        "--registry", str(root)),
            log=sink,
        )  # fmt: skip
        try:
            code = worker.process.wait(timeout=60)
        finally:
            worker.stop()
            assert worker.process.stdout is not None
            worker.process.stdout.close()
    assert code != 0
    text = log.read_text()
    assert "sha256" in text, text
    assert "Traceback" not in text  # one clear line, not a stack trace
