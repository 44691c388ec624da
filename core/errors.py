"""The one error hierarchy of abgate.

Every error a user can cause knows its HTTP status; one handler per app turns
it into ``{"status": "error", "error": message}``. Third-party errors are
converted at the boundary with ``raise SomeError(...) from exc``.
"""

from __future__ import annotations

__all__ = [
    "AbgateError",
    "ArtifactIntegrityError",
    "BadRequest",
    "ConfigError",
    "Conflict",
    "Forbidden",
    "NotFound",
    "PayloadTooLarge",
    "RedisUnavailable",
    "Unauthorized",
    "UpstreamUnavailable",
]


class AbgateError(Exception):
    """Root of every error abgate raises on purpose."""

    status_code: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(AbgateError):
    """The request body or parameters are not what the endpoint takes."""

    status_code = 400


class Unauthorized(AbgateError):
    """Missing or wrong admin token."""

    status_code = 401


class Forbidden(AbgateError):
    """The endpoint is switched off here; no token would help."""

    status_code = 403


class NotFound(AbgateError):
    """A named experiment, model or version does not exist."""

    status_code = 404


class Conflict(AbgateError):
    """The operation clashes with current state (a ramp already running, say)."""

    status_code = 409


class PayloadTooLarge(AbgateError):
    """The request body is over the configured limit."""

    status_code = 413


class ConfigError(AbgateError):
    """An experiment config is invalid; ``problems`` holds one line per finding."""

    status_code = 422

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class ArtifactIntegrityError(AbgateError):
    """A model artifact is missing, tampered with, or holds types nobody trusted."""

    status_code = 500


class UpstreamUnavailable(AbgateError):
    """No worker of the variant that must answer could be reached."""

    status_code = 503


class RedisUnavailable(AbgateError):
    """The Redis store could not be reached."""

    status_code = 503


class RedisModeMismatch(RedisUnavailable):
    """Redis answers, but not in the mode configured (a cluster node without
    ``ABGATE_REDIS_CLUSTER=1``): every write to a key on another node would fail."""
