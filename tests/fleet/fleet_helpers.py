"""Fleet scenario helpers: the real `modelswap` CLI, members the canary hash splits, waits."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import modelswap
from modelswap.fleet.rollout import serves_canary

DAEMON = Path(modelswap.__file__).resolve().parents[1]
TIMEOUT = 120.0
FLEET_SECRET = "fleet-scenario-secret-not-a-real-one"


def cli(*argv: str) -> tuple[int, str]:
    """`modelswap ARGV` as a user runs it (a new process): (exit code, stdout + stderr)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(DAEMON),
                                                        os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "modelswap", *argv], capture_output=True,
                          text=True, env=env, timeout=TIMEOUT)
    return done.returncode, done.stdout + done.stderr


def split_members(model: str, percent: int, n: int = 3, prefix: str = "host") -> list[str]:
    """The first `n` ids `<prefix>-<i>` among which the canary hash puts some members on
    the canary and some not (so both sides of a rollout are exercised)."""
    for start in range(1000):
        ids = [f"{prefix}-{i}" for i in range(start, start + n)]
        picked = sum(serves_canary(m, model, percent) for m in ids)
        if 0 < picked < n:
            return ids
    raise AssertionError("no split found")


def wait_for(pred: Callable[[], object], what: str, timeout: float = TIMEOUT) -> None:
    """Return once `pred()` is true; fail naming `what` after `timeout` (never asserted on
    as a duration)."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def table(out: str) -> dict[str, tuple[str, str]]:
    """`modelswap fleet status` rows: member → (version, note)."""
    rows = {}
    for line in out.splitlines()[2:]:
        if line.startswith("problem:"):
            break
        cells = line.split(maxsplit=6)
        rows[cells[0]] = (cells[2], cells[6] if len(cells) > 6 else "")
    return rows
