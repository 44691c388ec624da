"""Run the suite (or any command) beside CPU-bound processes, as on a busy machine.

``python -m tests.busy [--burners 2] [--runs 1] -- COMMAND...`` starts the burners
(each a Python loop that never sleeps), runs COMMAND up to ``--runs`` times in a
row, stopping at the first failure, then stops the burners by their pids. A test
that waits for a condition passes here; one that relies on a fixed sleep or a
tight deadline does not. ``make test-busy`` runs the whole suite this way.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.busy", description=__doc__)
    parser.add_argument("--burners", type=int, default=2, help="CPU-bound processes beside it")
    parser.add_argument("--runs", type=int, default=1, help="runs in a row that must pass")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND...")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command or args.burners < 0 or args.runs < 1:
        parser.error("give a command after --, --burners >= 0 and --runs >= 1")
    burners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
        for _ in range(args.burners)
    ]
    code = 0
    try:
        for run in range(1, args.runs + 1):
            started = time.monotonic()
            code = subprocess.call(command)
            print(
                f"busy run {run}/{args.runs} beside {args.burners} CPU-bound processes: "
                f"exit {code} in {time.monotonic() - started:.0f}s",
                flush=True,
            )
            if code != 0:
                break
    finally:
        for burner in burners:
            os.kill(burner.pid, signal.SIGKILL)
            burner.wait()
    return code


if __name__ == "__main__":
    sys.exit(main())
