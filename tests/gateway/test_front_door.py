"""The gateway's one front door (``gateway/front_door.py``).

The route table, the request body limit and the JSON error body are each
written once, and both servers (abgate's own and uvicorn) are adapters over
them: the source checks below fail when a second copy appears, and the
processes checked after them answer the same requests the same way.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from abgate.processes import Child
from abgate.redis_server import free_port
from core.settings import Settings
from experiments.loader import load_experiment
from gateway.admin import create_admin_app
from gateway.app import create_app
from gateway.live import LiveExperiments
from tests.conftest import ADMIN_TOKEN, start_gateway, write_config
from tests.test_architecture import ROOT, product_modules

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
LIMIT = 2000  # ABGATE_MAX_BODY_BYTES of the gateways started here
OVER = f"request body over the limit of {LIMIT} bytes"


def _sources(package: str | None = None) -> dict[str, ast.Module]:
    """Parsed product modules by path (``package``: only those of one package)."""
    found = {}
    for path in product_modules():
        relative = path.relative_to(ROOT).as_posix()
        if package is None or relative.startswith(f"{package}/"):
            found[relative] = ast.parse(path.read_text(), relative)
    return found


# --- written once ------------------------------------------------------------------


def _request_paths(tree: ast.Module) -> list[tuple[int, str]]:
    """Literal request paths a module matches against: ``x == "/..."`` and
    ``x.startswith("/...")`` / ``x.endswith("/...")``."""
    found = []
    for node in ast.walk(tree):
        literals: list[ast.expr] = []
        if isinstance(node, ast.Compare):
            literals = [node.left, *node.comparators]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("startswith", "endswith")
        ):
            literals = list(node.args)
        for literal in literals:
            value = literal.value if isinstance(literal, ast.Constant) else None
            if isinstance(value, str) and value.startswith("/"):
                found.append((node.lineno, value))
    return found


def test_the_route_table_is_written_once() -> None:
    # The gateway's own paths are matched in the front door; the model servers' paths,
    # which it delegates to, in gateway/protocols.py. Nowhere else.
    elsewhere = {
        f"{path}:{line}: {literal}"
        for path, tree in _sources("gateway").items()
        if path not in ("gateway/front_door.py", "gateway/protocols.py")
        for line, literal in _request_paths(tree)
    }
    assert not elsewhere, "request paths matched outside the front door:\n" + "\n".join(
        sorted(elsewhere)
    )
    door = {literal for _, literal in _request_paths(_sources("gateway")["gateway/front_door.py"])}
    assert {"/predict", "/feedback", "/health", "/ready", "/metrics", "/v1/"} <= door


def _calls(tree: ast.Module, names: set[str]) -> list[int]:
    """Lines of calls of ``<anything>.<name>(...)`` for each of ``names``."""
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Attribute)
        and (node.func.value.attr, node.func.attr) in names
    ]


def test_only_the_front_door_calls_the_gateways_endpoints() -> None:
    endpoints = {("hotpath", "predict"), ("hotpath", "feedback"), ("passthrough", "call")}
    callers = {
        path: lines
        for path, tree in _sources("gateway").items()
        if (lines := _calls(tree, endpoints))  # type: ignore[arg-type]
    }
    assert set(callers) == {"gateway/front_door.py"}, callers


def test_the_body_limit_is_defined_once() -> None:
    sources = {p.relative_to(ROOT).as_posix(): p.read_text() for p in product_modules()}
    refusal = [path for path, text in sources.items() if "request body over the limit" in text]
    assert refusal == ["core/http.py"], refusal  # BodyLimit.message
    # The gateway reads its setting once, to build the front door's limit.
    reads = [
        (path, text.count(".max_body_bytes"))
        for path, text in sources.items()
        if path.startswith("gateway/") and ".max_body_bytes" in text
    ]
    assert reads == [("gateway/app.py", 1)], reads
    # And compares no size with it by hand: every check is BodyLimit.exceeded.
    for path, tree in _sources("gateway").items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):
                dumped = ast.dump(node)
                assert not any(name in dumped for name in ("max_bytes", "body_limit")), (
                    f"{path}:{node.lineno}: a body size compared by hand"
                )


def _error_bodies(tree: ast.Module) -> list[int]:
    """Lines that spell the error body: a dict literal ``{"status": "error", ...}``, or
    a class with a ``status = "error"`` field."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            pairs = zip(node.keys, node.values, strict=True)
            if any(
                isinstance(k, ast.Constant) and k.value == "status"
                and isinstance(v, ast.Constant) and v.value == "error"
                for k, v in pairs
            ):  # fmt: skip
                found.append(node.lineno)
        elif isinstance(node, ast.AnnAssign | ast.Assign):
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            value = node.value
            if (
                any(isinstance(t, ast.Name) and t.id == "status" for t in targets)
                and isinstance(value, ast.Constant)
                and value.value == "error"
            ):
                found.append(node.lineno)
    return sorted(found)


def test_the_error_body_is_defined_once() -> None:
    spelled = {path: lines for path, tree in _sources().items() if (lines := _error_bodies(tree))}
    # error_body() and the ErrorAnswer model that documents it.
    assert list(spelled) == ["core/http.py"] and len(spelled["core/http.py"]) == 2, spelled


def test_the_source_checks_find_a_second_copy() -> None:
    second = ast.parse(
        "import orjson\n"
        "async def _route(path, method):\n"
        '    if path == "/health" and method == "GET":\n'
        '        return orjson.dumps({"status": "error", "error": "x"})\n'
        "class Oops:\n"
        '    status: str = "error"\n'
    )
    assert _request_paths(second) == [(3, "/health")]
    assert _error_bodies(second) == [4, 6]


# --- the route table and the API docs ------------------------------------------------


def test_every_public_path_in_the_api_docs_is_the_front_doors(tmp_path: Path) -> None:
    config = write_config(tmp_path / "d.yaml", {"champion": free_port()}, {"champion": 100})
    door = create_app(Settings(), store=None, bootstrap=load_experiment(config)).door
    spec = create_admin_app(Settings(), None, LiveExperiments()).openapi()
    public = [
        (method.upper().encode(), path.replace("{model}", "demo"))
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if "public" in operation.get("tags", ())
    ]
    assert len(public) == 6, public
    for method, path in public:
        assert door.route(method, path) is not None, (method, path)
    assert door.route(b"GET", "/admin/experiments") is None  # the admin app's
    assert door.route(b"GET", "/predict") is None  # the admin app's 405
    door.admin = None
    no_admin = door.route(b"GET", "/admin/experiments")
    assert no_admin is not None and not no_admin.reads_body  # the 404 route


# --- both servers, the same answers ------------------------------------------------


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Child]]:
    """One gateway under each server, without Redis, routing to a port nothing serves."""
    directory = tmp_path_factory.mktemp("front-door")
    config = write_config(directory / "fd.yaml", {"champion": free_port()}, {"champion": 100})
    started: dict[str, Child] = {}
    try:
        for server in ("abgate", "uvicorn"):
            started[server] = start_gateway(
                config, None, "--server", server, ABGATE_MAX_BODY_BYTES=str(LIMIT)
            )
        yield started
    finally:
        for child in started.values():
            child.stop()


def _answer(response: requests.Response) -> tuple[int, str, Any]:
    return response.status_code, response.headers["content-type"], response.json()


def _chunks(size: int) -> Iterator[bytes]:
    # A generator body goes out chunked: no Content-Length to refuse it by.
    for _ in range(size // 500):
        yield b"x" * 500


BIG = b"x" * (LIMIT + 1)
WEIGHTS = "/admin/experiments/demo/weights"
# name: (method, path, keywords of requests.request; a callable "data" is called first)
CASES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "health": ("GET", "/health", {}),
    "not found": ("GET", "/nope", {}),
    "oversized predict": ("POST", "/predict", {"data": BIG}),
    "streamed oversized predict": ("POST", "/predict", {"data": _chunks}),
    "bad JSON feedback": ("POST", "/feedback", {"data": b"{not json"}),
    "oversized admin": ("PUT", WEIGHTS, {"data": BIG, "headers": AUTH}),
    "streamed oversized admin": ("PUT", WEIGHTS, {"data": _chunks, "headers": AUTH}),
    "oversized admin without a token": ("POST", "/admin/experiments/demo/pause", {"data": BIG}),
}


def _send(child: Child, case: str) -> tuple[int, str, Any]:
    method, path, options = CASES[case]
    if callable(options.get("data")):
        options = {**options, "data": options["data"](4 * LIMIT)}
    return _answer(requests.request(method, f"{child.url}{path}", timeout=30, **options))


@pytest.mark.integration
def test_the_admin_app_refuses_an_oversized_body_under_uvicorn(servers: dict[str, Child]) -> None:
    for case in ("oversized admin", "streamed oversized admin", "oversized admin without a token"):
        status, content_type, body = _send(servers["uvicorn"], case)
        assert (status, content_type) == (413, "application/json"), case
        assert body == {"status": "error", "error": OVER}, case


@pytest.mark.integration
def test_both_servers_answer_the_same_requests_the_same_way(servers: dict[str, Child]) -> None:
    expected = {
        "health": (200, {"status": "healthy"}),
        "not found": (404, {"status": "error", "error": "Not Found"}),
        "oversized predict": (413, {"status": "error", "error": OVER}),
        "streamed oversized predict": (413, {"status": "error", "error": OVER}),
        "oversized admin": (413, {"status": "error", "error": OVER}),
    }
    for case in CASES:
        own, uvicorn = _send(servers["abgate"], case), _send(servers["uvicorn"], case)
        assert own == uvicorn, case
        assert own[1] == "application/json", case
        if case in expected:
            assert (own[0], own[2]) == expected[case], case
    status, _, body = _send(servers["abgate"], "bad JSON feedback")
    assert status == 400 and body["status"] == "error" and "JSON" in body["error"], body
