"""Logging for every abgate process, configured once from its settings.

``ABGATE_LOG_FORMAT=json`` writes one JSON object per line (what a container
platform ships to a log store); ``console`` (the default) writes lines for
people, as ``abgate up`` and ``make demo`` show them. Both go to stderr.

Structured values travel under one ``extra`` key, so call sites stay plain
stdlib logging::

    log.info("model loaded", extra=fields(model="demo", version="v1"))

Secrets never reach a log by design (nothing logs headers, the admin token or
request bodies); as a second line of defence the formatter masks the admin
token and the Redis password should one ever appear in a message.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable
from typing import Any, TextIO
from urllib.parse import urlsplit

import orjson

__all__ = [
    "ConsoleFormatter",
    "JsonFormatter",
    "configure_logging",
    "fields",
    "report_failure",
    "secrets_of",
]

FIELDS = "abgate_fields"
MASK = "[redacted]"
# Libraries that log every request at INFO (httpx does): their lines would drown ours.
_CHATTY = ("httpx", "httpcore", "urllib3", "asyncio")


def fields(**values: Any) -> dict[str, Any]:
    """The ``extra=`` argument that attaches structured ``values`` to a record."""
    return {FIELDS: values}


def _timestamp(created: float) -> str:
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


class _Redacting(logging.Formatter):
    """Masks known secrets in whatever a subclass formats."""

    def __init__(self, process: str, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.process = process
        # A secret may appear raw or JSON-escaped; mask both spellings.
        forms = {s for secret in secrets if secret for s in (secret, _json_escaped(secret))}
        self.secrets = sorted(forms, key=len, reverse=True)

    def _redact(self, line: str) -> str:
        for secret in self.secrets:
            if secret in line:
                line = line.replace(secret, MASK)
        return line


def _json_escaped(text: str) -> str:
    return orjson.dumps(text).decode()[1:-1]


class JsonFormatter(_Redacting):
    """One JSON object per record: ts, level, logger, process, msg, then the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "process": self.process,
            "msg": record.getMessage(),
        }
        values = getattr(record, FIELDS, None)
        if values:
            entry.update(values)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        line = orjson.dumps(entry, default=str, option=orjson.OPT_SERIALIZE_NUMPY).decode()
        return self._redact(line)


class ConsoleFormatter(_Redacting):
    """``HH:MM:SS.mmm LEVEL logger: message key=value ...`` for a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        clock = time.strftime("%H:%M:%S", time.localtime(record.created))
        line = (
            f"{clock}.{int(record.msecs):03d} {record.levelname:<7} {record.name}: "
            f"{record.getMessage()}"
        )
        values = getattr(record, FIELDS, None)
        if values:
            line += " " + " ".join(f"{key}={_console_value(v)}" for key, v in values.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return self._redact(line)


def _console_value(value: Any) -> str:
    # Plain words stay plain; anything else is quoted, so a value cannot forge a line.
    if isinstance(value, str) and value.isprintable() and value and not set(value) & {" ", '"'}:
        return value
    return orjson.dumps(value, default=str, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def secrets_of(settings: Any) -> list[str]:
    """What must never be readable in a log line: the admin token, the Redis password."""
    found = [settings.admin_token] if settings.admin_token else []
    if settings.redis_url:
        password = urlsplit(settings.redis_url).password
        if password:
            found.append(password)
    return found


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler abgate installed, so configuring again replaces it."""


def configure_logging(settings: Any, process: str, stream: TextIO | None = None) -> None:
    """Send every logger's records to stderr in the settings' format and level.

    Called once per process (again with a new ``process`` name replaces the
    handler); uvicorn is run with ``log_config=None`` so its records come here too.
    """
    secrets = secrets_of(settings)
    formatter: logging.Formatter
    if settings.log_format == "json":
        formatter = JsonFormatter(process, secrets)
    else:
        formatter = ConsoleFormatter(process, secrets)
    handler = _Handler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    level = logging.getLevelName(str(settings.log_level).upper())
    root.setLevel(level if isinstance(level, int) else logging.INFO)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def report_failure(line: str) -> None:
    """A command's one-line failure: a JSON record when logging is JSON, else the plain line."""
    root = logging.getLogger()
    if root.isEnabledFor(logging.ERROR) and any(
        isinstance(h, _Handler) and isinstance(h.formatter, JsonFormatter) for h in root.handlers
    ):
        logging.getLogger("abgate.cli").error(line)
    else:
        print(line, file=sys.stderr)
