"""Log formatting: JSON lines, console lines, secrets masked, one-line failures."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import orjson
import pytest

from core.logs import MASK, configure_logging, fields, report_failure
from core.settings import Settings


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _settings(**values: object) -> Settings:
    return Settings.model_validate(values)


def test_json_lines_carry_the_fields(restore_logging: None) -> None:
    out = io.StringIO()
    configure_logging(_settings(log_format="json", log_level="debug"), "gateway", out)
    logging.getLogger("abgate.test").info(
        "model %s loaded", "v1", extra=fields(sha256="ab12", load_ms=12.5, tags=["x"])
    )
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("abgate.test").exception("failed")
    first, second = (orjson.loads(line) for line in out.getvalue().splitlines())
    assert first["msg"] == "model v1 loaded" and first["level"] == "info"
    assert first["logger"] == "abgate.test" and first["process"] == "gateway"
    assert (first["sha256"], first["load_ms"], first["tags"]) == ("ab12", 12.5, ["x"])
    assert first["ts"].endswith("Z") and "T" in first["ts"]
    assert second["level"] == "error" and "ValueError: boom" in second["exc"]


def test_level_comes_from_settings(restore_logging: None) -> None:
    out = io.StringIO()
    configure_logging(_settings(log_format="json", log_level="warning"), "cli", out)
    logging.getLogger("abgate.test").info("hidden")
    logging.getLogger("abgate.test").warning("shown")
    assert [orjson.loads(line)["msg"] for line in out.getvalue().splitlines()] == ["shown"]


def test_console_lines_quote_values_that_could_forge_a_line(restore_logging: None) -> None:
    out = io.StringIO()
    configure_logging(_settings(log_format="console"), "up", out)
    logging.getLogger("abgate.test").info(
        "predict", extra=fields(variant="champion", request_id="a\nFAKE line", n=3)
    )
    (line,) = out.getvalue().splitlines()
    assert "INFO" in line and "abgate.test: predict" in line
    assert 'variant=champion request_id="a\\nFAKE line" n=3' in line


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_admin_token_and_redis_password_are_masked(log_format: str, restore_logging: None) -> None:
    out = io.StringIO()
    token = 'tok"en-s3cret'  # JSON escapes the quote: both spellings are masked
    settings = _settings(
        log_format=log_format, admin_token=token, redis_url="redis://:pw-s3cret@127.0.0.1:1/0"
    )
    configure_logging(settings, "gateway", out)
    logging.getLogger("abgate.test").warning(
        "leak %s and redis://:pw-s3cret@host", token, extra=fields(header=f"Bearer {token}")
    )
    text = out.getvalue()
    assert "s3cret" not in text and text.count(MASK) == 3


def test_failure_is_one_json_line_when_logging_is_json(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    out = io.StringIO()
    configure_logging(_settings(log_format="json"), "cli", out)
    report_failure("abgate status: error: no Redis")
    (line,) = out.getvalue().splitlines()
    assert orjson.loads(line)["msg"] == "abgate status: error: no Redis"
    configure_logging(_settings(log_format="console"), "cli", out)
    report_failure("abgate status: error: no Redis")
    assert capsys.readouterr().err == "abgate status: error: no Redis\n"
