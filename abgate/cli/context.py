"""What every command starts from: its settings (with logging configured), a Redis
store that answered, its name in the audit log, and the exit code of a failure."""

from __future__ import annotations

from typing import Any

from core.errors import AbgateError

__all__ = ["EXIT_ERROR", "audit_actor", "command_settings", "redis_store"]

EXIT_ERROR = 1


def command_settings(process: str = "cli") -> Any:
    """The process's settings, built here; logging is configured from them at the same time."""
    from pydantic import ValidationError

    from core.logs import configure_logging
    from core.settings import Settings

    try:
        settings = Settings()
    except ValidationError as exc:  # a bad ABGATE_* variable: one line, not a traceback
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        raise AbgateError(f"ABGATE_{where.upper()}: {message}" if where else message) from exc
    configure_logging(settings, process)
    return settings


def redis_store(settings: Any) -> Any:
    """The store of ``settings.redis_url``, pinged; ``AbgateError`` when none is set."""
    from core.store import Store

    if not settings.redis_url:
        raise AbgateError("no Redis to talk to: set REDIS_URL (abgate up prints it)")
    store = Store(settings.redis_url, cluster=settings.redis_cluster)
    store.ping()
    return store


def audit_actor() -> str:
    """Who changed a config from the command line, as the audit log records it."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in some containers
        return "cli"
