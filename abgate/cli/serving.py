"""``abgate gateway`` and ``abgate worker``: the long-running servers.

The gateway runs on abgate's own HTTP server (default) or uvicorn (``--server``).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from abgate.cli.context import command_settings, redis_store
from core.errors import AbgateError

__all__ = ["cmd_gateway", "cmd_worker"]


def cmd_gateway(args: argparse.Namespace) -> int:
    import functools
    import os

    from experiments.loader import load_experiment
    from gateway.app import build_gateway
    from gateway.exposure import exposure_warning

    settings = command_settings("gateway")
    bootstrap = load_experiment(args.config) if args.config else None  # fail fast, one line
    if not settings.redis_url and bootstrap is None:
        raise AbgateError("nothing to route: give --config FILE or set REDIS_URL")
    if settings.redis_url:
        _check_redis_mode(settings)
    host = args.host or settings.host
    settings = settings.model_copy(update={"host": host})  # what the gateway is bound to
    warning = exposure_warning(settings)
    if warning is not None:
        logging.getLogger("abgate.gateway").warning(warning)
    if args.workers <= 1:
        settings = settings.model_copy(update={"metrics_dir": ""})  # one process: nothing shared
    # Separate processes share nothing but Redis: each builds its own gateway.
    build = functools.partial(build_gateway, bootstrap=bootstrap)

    if args.server == "abgate":
        from gateway.server import serve

        # Forked server processes are handed these settings; nothing goes through os.environ.
        return serve(
            build,
            settings,
            host=host,
            port=args.port,
            workers=args.workers,
            backlog=2048,
            graceful_timeout=10,
        )

    import uvicorn

    if args.workers > 1:
        # uvicorn's worker processes import the app by name and take no objects: they
        # rebuild the settings from the environment (gateway.app.app_from_environment).
        os.environ["ABGATE_GATEWAY_CONFIG"] = str(args.config or "")
        os.environ["ABGATE_HOST"] = host
    uvicorn.run(
        "gateway.app:app_from_environment" if args.workers > 1 else build(settings),
        factory=args.workers > 1,
        workers=args.workers,
        host=host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_level=settings.log_level,
        log_config=None,  # uvicorn's records go through abgate's logging (core/logs.py)
        access_log=False,
        timeout_graceful_shutdown=10,
        # X-Forwarded-* only from ABGATE_TRUSTED_PROXIES, as abgate's own server does
        # (uvicorn's default would believe them from 127.0.0.1).
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies) or None,
        backlog=2048,
    )
    return 0


def _check_redis_mode(settings: Any) -> None:
    """Refuse a cluster node in single-node mode (writes would fail with MOVED forever);
    a Redis that does not answer yet is no reason not to route: recording waits."""
    from core.errors import RedisModeMismatch, RedisUnavailable

    try:
        redis_store(settings).close()
    except RedisModeMismatch:
        raise
    except Exception as exc:  # down or unreachable: the gateway buffers until it answers
        reason = exc.message if isinstance(exc, RedisUnavailable) else exc
        logging.getLogger("abgate.gateway").warning("Redis not reachable at start: %s", reason)


def cmd_worker(args: argparse.Namespace) -> int:
    import os

    # One request is one row: OpenMP threads only contend (several workers
    # share the cores), and their spin-waits turned 0.3 ms predictions into
    # timeouts under concurrency. Set before scikit-learn loads its runtime.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import uvicorn

    from model_workers.registry import ModelRegistry
    from model_workers.runtime import load_runtime
    from model_workers.server import create_worker_app

    settings = command_settings("worker")
    registry = ModelRegistry(args.registry or settings.registry_dir)
    runtime = load_runtime(registry, args.model, args.version)
    app = create_worker_app(settings, runtime)
    uvicorn.run(
        app,
        host=args.host or settings.host,
        port=args.port,
        log_level=settings.log_level,
        log_config=None,  # uvicorn's records go through abgate's logging (core/logs.py)
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    return 0
