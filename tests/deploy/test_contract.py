"""The helpers the deployment tests lean on must be able to say no."""

from __future__ import annotations

import pytest

from tests.deploy._contract import host_and_port, parse_command, settings_env_names


def test_settings_env_names_are_what_settings_reads() -> None:
    names = settings_env_names()
    assert {"REDIS_URL", "ABGATE_REDIS_URL", "ABGATE_ADMIN_TOKEN", "ABGATE_HOST"} <= names
    assert "ABGATE_REDIS_URI" not in names
    assert "ABGATE_REDIS_URL".lower() not in names


def test_parse_command_uses_the_real_grammar() -> None:
    args = parse_command(["worker", "--version", "v2", "--port", "8000"])
    assert (args.command, args.version, args.port) == ("worker", "v2", 8000)
    with pytest.raises(AssertionError, match="unrecognized arguments: --verbose"):
        parse_command(["worker", "--version", "v2", "--port", "8000", "--verbose"])
    with pytest.raises(AssertionError, match="invalid choice"):
        parse_command(["serve"])


def test_host_and_port_needs_an_explicit_port() -> None:
    assert host_and_port("http://champion:8000") == ("champion", 8000)
    with pytest.raises(AssertionError):
        host_and_port("http://champion")
