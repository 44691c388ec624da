"""What deployment files may name: the real CLI grammar and the real settings.

Docker and Kubernetes do not run in the test environment, so these helpers
check the next best thing: every command a container runs parses with the
parser ``abgate`` itself uses, and every ``ABGATE_*`` variable is one that
:class:`core.settings.Settings` reads.
"""

from __future__ import annotations

import argparse
import contextlib
import io
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import AliasChoices

from abgate.cli.parser import build_parser
from core.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def settings_env_names() -> set[str]:
    """Every environment variable name Settings reads (prefixed fields and aliases)."""
    prefix = Settings.model_config.get("env_prefix", "")
    names: set[str] = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(str(choice) for choice in alias.choices)
        elif isinstance(alias, str):
            names.add(alias)
        else:
            names.add(f"{prefix}{name}".upper())
    return names


def parse_command(argv: list[str]) -> argparse.Namespace:
    """Parse ``abgate ARGV`` with the real parser; fail with its one-line error."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            return build_parser().parse_args([str(arg) for arg in argv])
    except SystemExit as exc:
        raise AssertionError(f"abgate {' '.join(argv)}: {stderr.getvalue().strip()}") from exc


def host_and_port(url: str) -> tuple[str, int]:
    """The host and explicit port of an endpoint URL."""
    parts = urlsplit(url)
    assert parts.hostname and parts.port, f"{url}: endpoints need a host and an explicit port"
    return parts.hostname, parts.port
