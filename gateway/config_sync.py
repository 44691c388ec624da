"""Keeping a gateway's experiments in step with the configs stored in Redis.

At start the gateway loads every stored config (and stores a ``--config`` file
when Redis has none of that name); afterwards it hears changes over pub/sub
and re-reads all versions every few seconds, to catch anything published
while it was disconnected. An invalid stored config never replaces the one
being routed; a config gone from Redis keeps being routed, and ``/ready`` says so.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from core.store import AsyncStore
from experiments.config import ExperimentConfig
from gateway.live import LiveExperiments

__all__ = ["ConfigSync"]

log = logging.getLogger("abgate.config")

RESYNC_EVERY_S = 5.0


@dataclass
class ConfigSync:
    """Loads, watches and installs experiment configs."""

    store: AsyncStore | None
    experiments: LiveExperiments
    bootstrap: ExperimentConfig | None = None
    missing: set[str] = field(default_factory=set)
    rejected: dict[str, str] = field(default_factory=dict)
    last_sync: float = 0.0
    resync_every_s: float = RESYNC_EVERY_S
    # Called when a config with shadows is installed: the shadow caller starts then,
    # not on the first mirrored request (whose shadows would wait while it starts).
    shadows_installed: Callable[[], None] = lambda: None

    async def start(self) -> None:
        """Install what there is to route, before the first request."""
        if self.store is None:
            if self.bootstrap is not None:
                self._route(self.bootstrap, 0)
            return
        try:
            if self.bootstrap is not None:
                stored = await self.store.get_config(self.bootstrap.name)
                if stored is None:
                    await self.store.put_config(
                        self.bootstrap.name,
                        self.bootstrap.model_dump(mode="json"),
                        actor="gateway",
                        action="apply",
                        reason="first start with --config",
                    )
            await self.resync()
        except Exception as exc:  # Redis down at start: route the file
            log.warning("cannot read configs from Redis (%s); routing the --config file", exc)
            if self.bootstrap is not None and self.bootstrap.name not in self.experiments.by_name:
                self._route(self.bootstrap, 0)

    async def _extras(self, name: str) -> bool:
        """Read what is kept beside the config; True when the drift reference changed."""
        assert self.store is not None
        reference, ramp = await self.store.routing_extras(name)
        changed = self.experiments.drift_references.get(name, {}) != reference
        self.experiments.drift_references[name] = reference
        if ramp is None:
            self.experiments.ramp_states.pop(name, None)
        else:
            self.experiments.ramp_states[name] = ramp
        return changed

    def _install(
        self, name: str, version: int, config: dict[str, Any], paused: bool, *, force: bool = False
    ) -> None:
        live = self.experiments.by_name.get(name)
        if not force and live is not None and live.version == version and live.paused == paused:
            return
        try:
            parsed = ExperimentConfig.model_validate(config)
        except ValidationError as exc:
            reason = str(exc).splitlines()[0]
            if self.rejected.get(name) != f"{version}":
                log.error("stored config %s v%d is invalid, keeping the running one: %s",
                          name, version, reason)  # fmt: skip
            self.rejected[name] = f"{version}"
            return
        self.rejected.pop(name, None)
        self._route(parsed, version, paused=paused)

    def _route(self, config: ExperimentConfig, version: int, *, paused: bool = False) -> None:
        """Route ``config``: every install goes through here, so a shadow's caller is
        started whichever way its config came (Redis, or the ``--config`` file)."""
        self.experiments.install(config, version, paused=paused)
        if config.shadows:
            self.shadows_installed()

    async def resync(self) -> None:
        """Read every stored config and install the ones that changed."""
        assert self.store is not None
        names = set(await self.store.experiments()) | set(self.experiments.by_name)
        if self.bootstrap is not None:
            # Another replica may have stored it a moment ago without having
            # indexed it yet: never start with nothing to route.
            names.add(self.bootstrap.name)
        missing = set()
        for name in sorted(names):
            record = await self.store.get_config(name)
            if record is None:
                missing.add(name)
                continue
            changed = await self._extras(name)
            self._install(name, record.version, record.config, record.paused, force=changed)
        if missing - self.missing:
            log.warning("configs missing from Redis, still routing the last good ones: %s",
                        ", ".join(sorted(missing - self.missing)))  # fmt: skip
        self.missing = missing
        self.last_sync = time.monotonic()

    async def watch(self) -> None:
        """Follow pub/sub forever, reconnecting after Redis outages."""
        assert self.store is not None
        while True:
            try:
                async for name, _version in self.store.config_updates():
                    if name:
                        record = await self.store.get_config(name)
                        if record is not None:
                            changed = await self._extras(name)
                            self._install(
                                name, record.version, record.config, record.paused, force=changed
                            )
                    if time.monotonic() - self.last_sync > self.resync_every_s:
                        await self.resync()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection lost: retry after a pause
                log.debug("config watch interrupted: %s", exc)
                await asyncio.sleep(1.0)
