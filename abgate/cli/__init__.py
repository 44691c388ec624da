"""The ``abgate`` command: one front for every part of the product.

``parser.py`` holds the grammar; the handlers live by concern: ``models.py``
(train, models), ``serving.py`` (gateway, with the choice of HTTP server, and
worker), ``configs.py`` (validate, apply, promote, rollback), ``canary.py``
(ramp), ``reports.py`` (status, report, analyze, simulate) and ``local.py`` (up,
loadgen, demo); ``context.py`` builds what every command starts from.

Handlers import what they need lazily so that quick commands (``validate``,
``analyze``) do not pay for FastAPI, scikit-learn or Redis at start-up.
Every failure ends with one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence

from abgate.cli.context import EXIT_ERROR
from abgate.cli.parser import build_parser
from core.errors import AbgateError

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # Ctrl-C stops a command even when it was started with SIGINT ignored (a shell's
    # background job passes SIG_IGN on, and Python then leaves KeyboardInterrupt off).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return int(args.handler(args))
    except AbgateError as exc:
        from core.logs import report_failure

        report_failure(f"abgate {args.command}: error: {exc.message}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"abgate {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `abgate status --json | head`: the reader left. Point stdout at /dev/null so the
        # interpreter's final flush does not fail again, and exit quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
