"""docker-compose.yml: valid Compose, and every command, port and variable it names exists.

No Docker engine runs here, so the file is checked against the Compose
specification's JSON schema and against abgate's own CLI parser, settings,
experiment loader and training presets.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from abgate.cli.models import training_params
from core.store import Store
from experiments.loader import load_experiment
from model_workers.training import DEMO_VERSIONS
from tests.deploy._contract import (
    REPO,
    host_and_port,
    parse_command,
    settings_env_names,
)

SCHEMA = Path(__file__).resolve().parent / "compose-spec.json"
SHARED_SCHEMA = REPO.parent / "shared" / "reference" / "compose-spec.json"
ABGATE_IMAGE = "abgate"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


def abgate_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The services that run the abgate image (everything but Redis)."""
    return {
        name: service
        for name, service in services.items()
        if str(service.get("image", "")).split(":")[0] == ABGATE_IMAGE
    }


def command_of(service: dict[str, Any]) -> Any:
    command = service["command"]
    assert isinstance(command, list), "exec form, so no shell sits between Docker and abgate"
    return parse_command(command)


def container_ports(service: dict[str, Any]) -> set[int]:
    ports = {int(str(p).rsplit(":", 1)[-1]) for p in service.get("ports", [])}
    return ports | {int(p) for p in service.get("expose", [])}


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def env_file_paths(service: dict[str, Any]) -> list[Path]:
    entries = service.get("env_file", [])
    entries = [entries] if isinstance(entries, str | dict) else entries
    return [REPO / (e["path"] if isinstance(e, dict) else e) for e in entries]


def env_file_names(path: Path) -> list[str]:
    lines = [line.strip() for line in path.read_text().splitlines()]
    return [line.split("=", 1)[0] for line in lines if line and not line.startswith("#")]


def test_copy_of_the_schema_is_verbatim() -> None:
    if not SHARED_SCHEMA.exists():
        pytest.skip(f"{SHARED_SCHEMA} is not beside this clone")
    assert SCHEMA.read_bytes() == SHARED_SCHEMA.read_bytes()


def test_compose_file_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    errors = sorted(
        jsonschema.Draft7Validator(schema).iter_errors(compose), key=lambda e: list(e.path)
    )
    assert not errors, [f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors]


def test_the_schema_rejects_a_broken_file(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    broken = {**compose, "services": {**compose["services"], "gateway": {"depends_on": 3}}}
    assert not jsonschema.Draft7Validator(schema).is_valid(broken)


def test_every_abgate_command_parses(services: dict[str, dict[str, Any]]) -> None:
    ours = abgate_services(services)
    assert {"gateway", "champion", "challenger", "canary", "apply"} <= set(ours)
    commands = {name: command_of(service).command for name, service in ours.items()}
    assert commands["gateway"] == "gateway"
    assert commands["apply"] == "apply"


def test_every_variable_is_a_setting(services: dict[str, dict[str, Any]]) -> None:
    known = settings_env_names()
    for name, service in services.items():
        if name not in abgate_services(services):
            continue
        names = list(environment(service))
        for path in env_file_paths(service):
            example = path.with_name(path.name + ".example")
            assert path.exists() or example.exists(), f"{name}: no {path.name}(.example)"
            names += env_file_names(path if path.exists() else example)
        unknown = set(names) - known
        assert not unknown, f"{name}: not read by core.settings.Settings: {unknown}"


def test_admin_token_comes_from_an_env_file(services: dict[str, dict[str, Any]]) -> None:
    gateway = services["gateway"]
    assert "ABGATE_ADMIN_TOKEN" not in environment(gateway), "no secrets in the compose file"
    (path,) = env_file_paths(gateway)
    assert env_file_names(path.with_name(path.name + ".example")) == ["ABGATE_ADMIN_TOKEN"]
    assert f"/{path.relative_to(REPO)}" in (REPO / ".gitignore").read_text().split()


def test_servers_listen_where_ports_and_health_checks_point(
    services: dict[str, dict[str, Any]],
) -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    for name, service in abgate_services(services).items():
        args = command_of(service)
        if args.command not in ("gateway", "worker"):
            continue
        assert container_ports(service) == {args.port}, name
        # No healthcheck override: the image's check (GET /health on 8000) applies.
        assert "healthcheck" not in service
        assert f"127.0.0.1:{args.port}/health" in dockerfile, name
    assert services["gateway"]["ports"] == [f"{command_of(services['gateway']).port}:8000"]


def test_experiment_routes_to_the_compose_workers(services: dict[str, dict[str, Any]]) -> None:
    apply = command_of(services["apply"])
    # The apply container sees ./experiments at /app/experiments (its working dir).
    assert "./experiments:/app/experiments:ro" in services["apply"]["volumes"]
    config = load_experiment(REPO / apply.file)
    for variant in [*config.variants, *config.shadows]:
        for url in variant.endpoints:
            host, port = host_and_port(url)
            assert host in services, f"{variant.name}: {url} names no compose service"
            worker = command_of(services[host])
            assert (worker.command, worker.model, worker.version, worker.port) == (
                "worker", config.model, variant.model_version, port,
            ), f"{variant.name}: {url}"  # fmt: skip
            gateway_deps = services["gateway"]["depends_on"]
            assert gateway_deps[host] == {"condition": "service_healthy"}


def test_workers_wait_for_their_trained_version(services: dict[str, dict[str, Any]]) -> None:
    trained: dict[str, str] = {}
    for name, service in abgate_services(services).items():
        args = command_of(service)
        if args.command != "train":
            continue
        assert "models:/models" in service["volumes"]
        params = training_params(args)
        # The containers serve the same models as `make demo` and docs/models.md's table.
        assert params == DEMO_VERSIONS[args.version], name
        trained[args.version] = name
    for name, service in abgate_services(services).items():
        args = command_of(service)
        if args.command != "worker":
            continue
        assert "models:/models:ro" in service["volumes"], name
        train_service = trained[args.version]
        assert service["depends_on"][train_service] == {
            "condition": "service_completed_successfully"
        }, name


def test_start_up_order_and_limits(services: dict[str, dict[str, Any]]) -> None:
    redis = services["redis"]
    assert "--appendonly" in redis["command"] and "redis-data:/data" in redis["volumes"]
    assert redis["healthcheck"]["test"][0] == "CMD"
    gateway_deps = services["gateway"]["depends_on"]
    assert gateway_deps["redis"] == {"condition": "service_healthy"}
    assert gateway_deps["apply"] == {"condition": "service_completed_successfully"}
    assert services["apply"]["depends_on"]["redis"] == {"condition": "service_healthy"}
    for name, service in services.items():
        limits = service["deploy"]["resources"]["limits"]
        assert float(limits["cpus"]) > 0 and limits["memory"], name


def test_redis_url_names_the_redis_service(services: dict[str, dict[str, Any]]) -> None:
    for name in ("gateway", "apply"):
        host, port = host_and_port(environment(services[name])["ABGATE_REDIS_URL"])
        assert host == "redis" and port == 6379, name


@pytest.mark.integration
def test_apply_service_stores_once_and_keeps_later_changes(
    services: dict[str, dict[str, Any]], redis_url: str
) -> None:
    """Run the apply service's exact command (working dir = the image's /app layout)."""

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "abgate", *argv],
            cwd=REPO,
            env={"ABGATE_REDIS_URL": redis_url},
            capture_output=True,
            text=True,
            timeout=120,
        )

    command = services["apply"]["command"]
    first = run(*command)
    assert first.returncode == 0, first.stderr
    assert "demo: stored as version 1" in first.stdout
    rolled_back = run("rollback", "demo", "--reason", "a ramp gate failed")
    assert rolled_back.returncode == 0, rolled_back.stderr
    again = run(*command)  # `docker compose up` once more
    assert again.returncode == 0, again.stderr
    record = Store(redis_url).get_config("demo")
    assert record.version == 2
    weights = {v["name"]: v["weight"] for v in record.config["variants"]}
    assert weights == {"champion": 100, "challenger": 0, "canary": 0}
