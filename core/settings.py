"""Process settings: built once per process (in the CLI) and passed down.

Experiment policy lives in YAML (``experiments/``); this object holds only what
a process needs to run: where Redis and the model registry are, ports, limits.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Settings read from ``ABGATE_*`` environment variables (and ``REDIS_URL``)."""

    model_config = SettingsConfigDict(env_prefix="ABGATE_", extra="ignore", frozen=True)

    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("ABGATE_REDIS_URL", "REDIS_URL"),
        description="External Redis; when unset, commands that need one start an embedded server.",
    )
    redis_cluster: bool = Field(
        default=False,
        description="REDIS_URL is a seed node of a Redis Cluster (explicit: never guessed).",
    )
    registry_dir: Path = Field(
        default=Path("models"),
        description="Root of the model registry (models/<model>/<version>/).",
    )
    state_dir: Path = Field(
        default=Path("var"),
        description="Where `abgate up` keeps the embedded Redis data and logs.",
    )
    host: str = Field(default="127.0.0.1", description="Address servers bind to.")
    max_body_bytes: int = Field(
        default=1_048_576, gt=0, description="Largest request body accepted (413 above it)."
    )
    max_batch_size: int = Field(
        default=1000, gt=0, description="Most rows a worker's /predict/batch accepts."
    )
    http_head_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description=(
            "Time a request line and headers may take from their first byte, however they "
            "trickle in (slowloris): past it the gateway answers 408 and closes."
        ),
    )
    http_body_timeout_s: float = Field(
        default=30.0, gt=0, description="Time a request body may take after its head (408 past it)."
    )
    config_resync_s: float = Field(
        default=5.0,
        gt=0,
        description=(
            "Each gateway process hears config changes over pub/sub at once and re-reads every "
            "stored config this often, catching a change whose message it missed."
        ),
    )
    http_keep_alive_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="Idle keep-alive connections (and stalled ones) close after it.",
    )
    http_write_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description=(
            "Time an answer may wait with no byte taken by a client that does not read: "
            "the connection is dropped."
        ),
    )
    http_max_head_bytes: int = Field(
        default=65_536,
        ge=1024,
        description=(
            "Request line and headers, separators included, counted as bytes arrive: 431 "
            "(414 for the request line) above it."
        ),
    )
    http_max_headers: int = Field(
        default=100, gt=0, description="Header fields per request: 431 above it."
    )
    http_max_connections: int = Field(
        default=4096,
        gt=0,
        description=(
            "Open client connections per gateway process; one more is answered 503 and closed "
            "(keep it below the process's open-file limit, `ulimit -n`)."
        ),
    )
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description=(
            "Addresses or CIDRs of the proxies in front of the gateway (comma-separated, "
            "e.g. `10.0.0.0/8,127.0.0.1`; none by default). Only a connection from one of "
            "them has its X-Forwarded-For (client address in logs) and X-Forwarded-Proto "
            "(the dashboard cookie's Secure flag) believed; from anyone else they are ignored."
        ),
    )
    admin_token: str | None = Field(
        default=None, description="Bearer token for /admin; admin endpoints are off without it."
    )
    log_level: str = Field(default="info", description="Log level for every process.")
    log_format: Literal["console", "json"] = Field(
        default="console",
        description="`json`: one JSON object per line (containers); `console`: lines for people.",
    )
    access_log_rate: float = Field(
        default=0.01,
        ge=0.0,
        le=1.0,
        description=(
            "Share of requests that get an access-log record (0 turns it off); failed requests "
            "are always logged. 1 % keeps the cost far below 1 % of throughput (make bench)."
        ),
    )
    log_payloads: bool = Field(
        default=False,
        description="Debugging only: put request features into access records (off: never).",
    )
    stats_window_s: int = Field(
        default=60, gt=0, description="Width of the time windows statistics are kept in."
    )
    flush_interval_s: float = Field(
        default=0.05, gt=0, description="How often the gateway writes outcomes to Redis."
    )
    max_pending_outcomes: int = Field(
        default=100_000,
        gt=0,
        description=(
            "Raw outcomes (and feedback) buffered while Redis is down; more outcomes are "
            "dropped and counted, more feedback is refused with a 503."
        ),
    )
    request_ttl_s: int = Field(
        default=86400,
        gt=0,
        description=(
            "How long a request's variant mapping is kept for feedback (seconds). Feedback "
            "that arrives before its request's mapping reached Redis waits as long, then "
            "expires and is counted as expired."
        ),
    )
    unit_ttl_s: int = Field(
        default=30 * 86400,
        gt=0,
        description=(
            "How long a unit's running counts (experiments whose unit is a header or a body "
            "field) are kept after its last request or outcome (seconds; every write starts "
            "the wait again). A unit that returns after they expired starts again from zero "
            "and counts as a new unit in the per-unit statistics (docs/statistics.md)."
        ),
    )
    shadow_calls: Literal["process", "inline"] = Field(
        default="process",
        description=(
            "Where a gateway process makes its shadow calls: 'process', a child process it "
            "starts on the first one (the live requests keep this process's CPU: at 100 % "
            "mirroring to a 50-ms shadow the live p50 rose ~14 % inline), or 'inline', in "
            "the serving process itself (one process less)."
        ),
    )
    drift_sample_rate: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description=(
            "Share of answered requests whose features and prediction are binned for drift "
            "checks (taken as 1 in round(1/rate); 0 turns sampling off). At 0.05 a variant "
            "serving 100 req/s has the 200 samples a drift verdict needs in 40 s, while the "
            "few microseconds of binning per sampled request average out to under 1 % of the "
            "gateway's CPU per request (python -m bench.drift_sampling)."
        ),
    )

    metrics_dir: str = Field(
        default="",
        description=(
            "Directory where the server processes of one `abgate gateway --workers N` "
            "publish their figures, so every /metrics scrape shows the whole gateway. "
            "One per gateway: emptied when it starts. Unset: a temporary directory, "
            "removed when the gateway stops."
        ),
    )
    test_drop_records: str = Field(
        default="",
        pattern=r"^$|^[a-z0-9][a-z0-9_-]*:0?\.[0-9]+(:[0-9]+)?$",
        description=(
            "TEST ONLY, never in production: `VARIANT:SHARE[:FROM_VERSION]` makes the "
            "gateway lose that share of VARIANT's request records (every round(1/SHARE)-th) "
            "routed under config version FROM_VERSION or later, as a recording bug would; "
            "the tests check that the sample-ratio check catches it."
        ),
    )

    @field_validator("registry_dir", "state_dir", mode="after")
    @classmethod
    def _absolute(cls, path: Path) -> Path:
        # Child processes (valkey, workers) may run in another directory: valkey changes
        # into --dir before it opens a relative --logfile, so a relative path breaks it.
        return path.expanduser().absolute()

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> Any:
        items = value.split(",") if isinstance(value, str) else value
        out = []
        for item in items:
            text = str(item).strip()
            if not text:
                continue
            try:
                out.append(str(ipaddress.ip_network(text, strict=False)))
            except ValueError as exc:
                raise ValueError(f"{text!r} is not an IP address or CIDR network") from exc
        return tuple(out)

    @model_validator(mode="after")
    def _cluster_needs_a_url(self) -> Self:
        # The embedded server is a single node; a cluster is always an external one.
        if self.redis_cluster and not self.redis_url:
            raise ValueError("ABGATE_REDIS_CLUSTER=1 needs REDIS_URL (a node of the cluster)")
        return self
