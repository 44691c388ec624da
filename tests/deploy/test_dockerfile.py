"""The Dockerfile, read as text: multi-stage, slim, non-root, healthy, no run-time builds."""

from __future__ import annotations

import glob
import json
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from abgate.processes import Child
from abgate.redis_server import free_port
from tests.conftest import port_of, start_gateway, write_config
from tests.deploy._contract import REPO, parse_command, settings_env_names

BUILD_TOOLS = re.compile(
    r"\b(build-essential|gcc|g\+\+|clang|make|cmake|cargo|rustc|python3?-dev|libc6?-dev)\b"
)


@dataclass
class Stage:
    """One ``FROM`` section: its base image and its instructions in order."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse_dockerfile(text: str) -> list[Stage]:
    """Split a Dockerfile into stages, joining continued lines and dropping comments."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        else:
            assert stages, f"{keyword} before the first FROM"
            stages[-1].instructions.append((keyword, args))
    return stages


def exec_form(args: str) -> list[str]:
    """A CMD/ENTRYPOINT in exec form (JSON list); shell form is refused."""
    value = json.loads(args)
    assert isinstance(value, list), f"not exec form: {args}"
    return [str(item) for item in value]


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile((REPO / "Dockerfile").read_text())


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


def test_parser_reads_stages_and_continuations() -> None:
    stages = parse_dockerfile(
        "# comment\nFROM a:1 AS build\nRUN x \\\n    && y\nFROM b:2\nUSER 5\n"
    )
    assert [(s.base, s.name) for s in stages] == [("a:1", "build"), ("b:2", None)]
    assert stages[0].all("RUN") == ["x && y"]
    assert stages[1].all("USER") == ["5"]


def test_multi_stage_on_a_slim_base(stages: list[Stage], final: Stage) -> None:
    assert len(stages) >= 2
    assert final.base.endswith("-slim"), final.base
    copied_from_build = [args for args in final.all("COPY") if args.startswith("--from=")]
    assert copied_from_build, "the final stage should copy the installed environment"


def test_final_stage_runs_as_a_non_root_user(final: Stage) -> None:
    users = final.all("USER")
    assert users, "no USER in the final stage"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    if not user.isdigit():
        created = " ".join(final.all("RUN"))
        assert re.search(rf"(useradd|adduser)\b[^&;]*\b{re.escape(user)}\b", created), (
            f"user {user} is not created in the final stage"
        )


def test_final_stage_has_a_healthcheck_on_health(final: Stage) -> None:
    checks = final.all("HEALTHCHECK")
    assert len(checks) == 1
    assert "/health" in checks[0]
    assert "curl" not in checks[0] and "wget" not in checks[0], "slim images have neither"
    command = exec_form(checks[0][checks[0].index("CMD") + 3 :].strip())
    assert command[0] == "python"
    match = re.search(r"127\.0\.0\.1:(\d+)/health", command[-1])
    assert match, command
    assert match.group(1) in final.all("EXPOSE")
    # The default command serves on the port the health check asks.
    (cmd,) = final.all("CMD")
    assert parse_command(exec_form(cmd)).port == int(match.group(1))


def test_no_build_tools_in_the_final_stage(final: Stage) -> None:
    for args in final.all("RUN"):
        assert not BUILD_TOOLS.search(args), f"build tools in the final stage: {args}"
        assert "pip install" not in args, "the final stage copies a built virtualenv"


def test_entrypoint_and_cmd_install_nothing_at_run_time(final: Stage) -> None:
    (entrypoint,) = final.all("ENTRYPOINT")
    (cmd,) = final.all("CMD")
    argv = exec_form(entrypoint) + exec_form(cmd)
    assert not {"pip", "pip3", "uv", "apt-get", "apk"} & set(argv)
    assert argv[0] == "abgate"
    parse_command(argv[1:])


def test_abgate_settings_in_env_exist(final: Stage) -> None:
    known = settings_env_names()
    names = [word.split("=", 1)[0] for args in final.all("ENV") for word in shlex.split(args)]
    abgate_names = [name for name in names if name.startswith("ABGATE_")]
    assert abgate_names, "the image should bind to 0.0.0.0 and find the registry"
    assert set(abgate_names) <= known


def test_copied_sources_exist(stages: list[Stage]) -> None:
    for stage in stages:
        for args in stage.all("COPY"):
            if args.startswith("--from="):
                continue
            *sources, _target = args.split()
            for source in sources:
                assert glob.glob(str(REPO / source)), f"COPY {source}: not in the repository"


def test_every_package_is_copied_into_the_build(stages: list[Stage]) -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in include}
    copied = {args.split()[0] for args in stages[0].all("COPY")}
    assert packages <= copied, f"not copied into the build stage: {packages - copied}"


def test_dockerignore_keeps_the_venv_and_secrets_out() -> None:
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".venv", ".git", "**/*.env"} <= set(ignored)


def run_healthcheck(final: Stage, port: int) -> int:
    """Run the image's HEALTHCHECK command here, aimed at ``port`` instead of 8000."""
    (check,) = final.all("HEALTHCHECK")
    command = exec_form(check[check.index("CMD") + 3 :].strip())
    assert command[:2] == ["python", "-c"]
    code = command[2].replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30).returncode


@pytest.mark.integration
def test_healthcheck_passes_for_a_gateway_and_fails_without_one(
    final: Stage, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "x.yaml", {"champion": free_port()}, {"champion": 100})
    gateway = start_gateway(config, None)
    try:
        assert run_healthcheck(final, port_of(gateway)) == 0
    finally:
        gateway.stop()
    assert run_healthcheck(final, free_port()) != 0


@pytest.mark.integration
def test_healthcheck_passes_for_a_worker(final: Stage, worker_v1: Child) -> None:
    assert run_healthcheck(final, port_of(worker_v1)) == 0
