"""X-Forwarded-For/-Proto are believed from trusted proxies only.

Pure checks of ``gateway.forwarded``, then real gateways: one trusting no proxy
(the default), one trusting 127.0.0.1 (where the test connects from, standing
in for an ingress). The same spoofed headers change nothing at the first and
set the dashboard cookie's Secure flag and the logged client address at the
second.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson
import pydantic
import pytest
import requests

from abgate.processes import Child
from core.settings import Settings
from gateway.forwarded import TrustedProxies
from tests.conftest import ADMIN_TOKEN, port_of, start_gateway, write_config
from tests.gateway.test_gateway_process import ROW

CLIENT = "203.0.113.7"  # where the request really came from, as the ingress saw it
SPOOF = "198.51.100.66"  # what the client wrote into X-Forwarded-For itself

# --- pure ------------------------------------------------------------------------------


def test_untrusted_peer_keeps_its_address_and_scheme_whatever_it_sends() -> None:
    proxies = TrustedProxies(["10.0.0.0/8"])
    assert proxies.client("192.0.2.1", f"{CLIENT}, 10.0.0.5") == "192.0.2.1"
    assert proxies.scheme("192.0.2.1", "https", "http") == "http"
    nobody = TrustedProxies()
    assert not nobody and nobody.client("127.0.0.1", CLIENT) == "127.0.0.1"
    assert nobody.scheme("127.0.0.1", b"https", "http") == "http"


def test_trusted_peer_gives_the_rightmost_address_that_is_no_trusted_proxy() -> None:
    proxies = TrustedProxies(["10.0.0.0/8", "::1"])
    # The client wrote SPOOF; the edge proxy appended what it saw; an inner proxy too.
    assert proxies.client("10.1.1.1", f"{SPOOF}, {CLIENT}, 10.2.2.2") == CLIENT
    assert proxies.client("::1", CLIENT.encode()) == CLIENT
    assert proxies.client("::ffff:10.1.1.1", f"{CLIENT}:5123") == CLIENT  # v4-mapped, port
    assert proxies.client("10.1.1.1", "[2001:db8::5]:443") == "2001:db8::5"
    # Only proxies, or nothing: the leftmost proxy is the best known; garbage stops the walk.
    assert proxies.client("10.1.1.1", "10.3.3.3, 10.2.2.2") == "10.3.3.3"
    assert proxies.client("10.1.1.1", None) == "10.1.1.1"
    assert proxies.client("10.1.1.1", f"{CLIENT}, not-an-ip, 10.2.2.2") == "10.2.2.2"
    # The scheme the proxy next to the gateway reports; anything else is ignored.
    assert proxies.scheme("10.1.1.1", "http, https", "http") == "https"
    assert proxies.scheme("10.1.1.1", "HTTPS", "http") == "https"
    assert proxies.scheme("10.1.1.1", "gopher", "http") == "http"
    assert proxies.scheme("192.0.2.1", "http", "https") == "https"  # own TLS stays


def test_settings_read_a_comma_separated_list_and_refuse_a_bad_entry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().trusted_proxies == ()
    monkeypatch.setenv("ABGATE_TRUSTED_PROXIES", " 10.0.0.0/8, 127.0.0.1 ,::1,")
    assert Settings().trusted_proxies == ("10.0.0.0/8", "127.0.0.1/32", "::1/128")
    monkeypatch.setenv("ABGATE_TRUSTED_PROXIES", "10.0.0.0/8,10.0.0.300")
    with pytest.raises(pydantic.ValidationError, match=r"10\.0\.0\.300"):
        Settings()


# --- real gateways -----------------------------------------------------------------------


def _records(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text().splitlines():
        _, _, text = line.partition(" | ")
        if text.startswith("{"):
            out.append(orjson.loads(text))
    return out


def _wait_record(path: Path, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = [r for r in _records(path) if check(r)]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no matching record in {_records(path)}")


@pytest.fixture(scope="module")
def gateways(
    tmp_path_factory: pytest.TempPathFactory, demo_workers: dict[str, Child]
) -> Iterator[dict[str, tuple[Child, Path]]]:
    root = tmp_path_factory.mktemp("forwarded")
    config = write_config(root / "fwd.yaml", {"champion": port_of(demo_workers["champion"])},
                          {"champion": 100}, name="forwarded")  # fmt: skip
    env = {"ABGATE_LOG_FORMAT": "json", "ABGATE_LOG_LEVEL": "info", "ABGATE_ACCESS_LOG_RATE": "1"}
    started: dict[str, tuple[Child, Path]] = {}
    handles: list[IO[str]] = []
    try:
        for name, trusted in (("untrusted", ""), ("trusted", "10.0.0.0/8,127.0.0.1")):
            path = root / f"{name}.log"
            handles.append(handle := path.open("w"))
            child = start_gateway(config, None, log=handle, ABGATE_TRUSTED_PROXIES=trusted, **env)
            started[name] = (child, path)
        yield started
    finally:
        for child, _ in started.values():
            child.stop()
        for handle in handles:
            handle.close()


FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-For": f"{SPOOF}, {CLIENT}"}


def _login_cookie(gateway: Child, headers: dict[str, str]) -> str:
    answer = requests.post(f"{gateway.url}/dashboard/login", data={"token": ADMIN_TOKEN},
                           headers=headers, timeout=10)  # fmt: skip
    assert answer.status_code == 204, answer.text
    return answer.headers["set-cookie"]


@pytest.mark.integration
@pytest.mark.parametrize(("name", "secure"), [("untrusted", False), ("trusted", True)])
def test_dashboard_cookie_is_secure_only_when_a_trusted_proxy_says_https(
    gateways: dict[str, tuple[Child, Path]], name: str, secure: bool
) -> None:
    gateway, _ = gateways[name]
    assert "secure" not in _login_cookie(gateway, {}).lower()  # plain HTTP, no proxy header
    cookie = _login_cookie(gateway, FORWARDED)
    assert ("secure" in cookie.lower().split("; ")) is secure, cookie
    plain = _login_cookie(gateway, {"X-Forwarded-Proto": "http"})
    assert "secure" not in plain.lower(), plain


@pytest.mark.integration
@pytest.mark.parametrize(("name", "client"), [("untrusted", "127.0.0.1"), ("trusted", CLIENT)])
def test_logs_name_the_forwarded_client_only_from_a_trusted_proxy(
    gateways: dict[str, tuple[Child, Path]], name: str, client: str
) -> None:
    gateway, log = gateways[name]
    rid = f"fwd-{name}"
    answer = requests.post(gateway.url + "/predict", json={"features": ROW},
                           headers={"X-Request-ID": rid, **FORWARDED}, timeout=30)  # fmt: skip
    assert answer.status_code == 200, answer.text
    bad_headers = {"X-Request-ID": f"{rid}-bad", **FORWARDED}
    bad = requests.post(gateway.url + "/predict", data=b"{", headers=bad_headers, timeout=30)
    assert bad.status_code == 400
    refused = requests.get(gateway.url + "/admin/experiments", timeout=10,
                           headers={"Authorization": "Bearer nope", **FORWARDED})  # fmt: skip
    assert refused.status_code == 401
    served = _wait_record(log, lambda r: r.get("msg") == "predict" and r.get("request_id") == rid)
    rejected = _wait_record(
        log, lambda r: r.get("msg") == "predict" and r.get("request_id") == f"{rid}-bad"
    )
    admin = _wait_record(log, lambda r: "admin request refused" in str(r.get("msg")))
    assert served["client"] == client, served
    assert rejected["client"] == client, rejected
    assert admin["client"] == client, admin
    # The address the client made up is never taken for it.
    assert SPOOF not in {served["client"], rejected["client"], admin["client"]}
