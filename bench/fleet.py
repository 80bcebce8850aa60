"""Fleet benchmark: members following one S3 bucket (moto's server on 127.0.0.1, own process).

    PYTHONPATH=daemon python -m bench.fleet [--quick]

Each member is an in-process `ModelSwap` with its own `remote.cache_dir` and member id,
serving the tiny model (`y = 0.5 x + b`, a new `b` per version) from `s3://bucket/m`.
Members find new versions by listing (`remote.poll_interval` 0.5 s, ±20%; no SQS queue:
one SQS queue delivers each message to one member only, a fleet needs one queue per member).

1. publish → all members available: from the end of `modelswap publish` (the manifest,
   written last, makes the version complete) until every member's `acquire("m")` returns
   it (an AVAILABLE event), for 1, 2 and 4 members;
2. the spread of load start times (max - min of the LOADING events) across 4 members for
   the same publish, with `remote.swap_jitter` 0 and 2 s.

A benchmark, not a test: it asserts nothing. Members share this process's 2 cores and GIL.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .common import loadavg, machine, spread
from .remote import _Server

POLL = 0.5  # seconds between listings (remote.poll_interval)
JITTER = 2.0  # remote.swap_jitter of the staggered run


class Times:
    """When each member saw each (version, state): perf_counter at the event."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, int, str], float] = {}
        self._cond = threading.Condition()

    def callback(self, member: str) -> Callable[[Any], None]:
        def on_event(event: Any) -> None:
            with self._cond:
                self.seen.setdefault((member, event.version, event.state.value),
                                     time.perf_counter())
                self._cond.notify_all()
        return on_event

    def wait(self, members: list[str], version: int, state: str, timeout: float = 300) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: all((m, version, state) in self.seen
                                                   for m in members), timeout):
                raise TimeoutError(f"v{version} not {state} on every member in {timeout}s")

    def of(self, members: list[str], version: int, state: str) -> list[float]:
        return [self.seen[(m, version, state)] for m in members]


def start_members(url: str, work: Path, count: int, jitter: float,
                  times: Times) -> tuple[list[Any], list[str]]:
    from modelswap import ModelSwap
    from modelswap.config import parse_config

    swaps, members = [], []
    tag = uuid.uuid4().hex[:6]
    for i in range(count):
        member = f"bench-{tag}-{i}"
        config = parse_config(
            f"models:\n  - name: m\n    base_path: {url}\n"
            f"remote:\n  cache_dir: {work / member}\n  poll_interval: {POLL}\n"
            f"  swap_jitter: {jitter}\n")
        swap = ModelSwap(config, member=member)
        swap.subscribe(times.callback(member))
        swaps.append(swap.start())
        members.append(member)
    return swaps, members


def run_fleet(url: str, work: Path, exports: list[Path], count: int, jitter: float,
              publishes: int) -> tuple[list[float], list[float]]:
    """Start `count` members on v1, then publish v2.. one at a time; per publish: (seconds
    until every member serves it, spread of the load starts)."""
    from modelswap.watch.remote import publish

    times = Times()
    publish(exports[0], url, 1)
    swaps, members = start_members(url, work, count, jitter, times)
    all_available, starts = [], []
    try:
        times.wait(members, 1, "AVAILABLE")
        for version in range(2, publishes + 2):
            publish(exports[(version - 1) % len(exports)], url, version)
            done = time.perf_counter()
            times.wait(members, version, "AVAILABLE")
            all_available.append(max(times.of(members, version, "AVAILABLE")) - done)
            loading = times.of(members, version, "LOADING")
            starts.append(max(loading) - min(loading))
    finally:
        for swap in swaps:
            swap.stop()
    return all_available, starts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 publishes per row, not 8")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import boto3

    from modelswap.cli.demo import export_linear

    publishes = 3 if args.quick else 8
    server = _Server()
    os.environ.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{server.port}",
                      AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench-secret",
                      AWS_REGION="us-east-1")
    work = Path(tempfile.mkdtemp(prefix="modelswap-bench-fleet-"))
    rows: list[tuple[str, str, str]] = []
    print(machine(), file=sys.stderr, flush=True)
    try:
        exports = [export_linear(work / f"tiny-{b}", 0.5, float(b)) for b in range(4)]
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        boto3.client("s3").create_bucket(Bucket=bucket)
        for count in (1, 2, 4):
            before = loadavg()
            took, _ = run_fleet(f"s3://{bucket}/n{count}/m", work / f"n{count}", exports,
                                count, 0.0, publishes)
            rows.append((f"1 publish → all {count} member(s) available (poll {POLL} s)",
                         spread(took, 1.0, "{:.2f}"), f"{before:.1f}→{loadavg():.1f}"))
        for jitter in (0.0, JITTER):
            before = loadavg()
            took, starts = run_fleet(f"s3://{bucket}/j{jitter:g}/m", work / f"j{jitter:g}",
                                     exports, 4, jitter, publishes)
            rows.append((f"2 load start spread, 4 members, swap_jitter {jitter:g} s",
                         spread(starts, 1.0, "{:.2f}"), f"{before:.1f}→{loadavg():.1f}"))
            rows.append((f"2 publish → all 4 available, swap_jitter {jitter:g} s",
                         spread(took, 1.0, "{:.2f}"), f"{before:.1f}→{loadavg():.1f}"))
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    header = ("figure", "measured (s): median [min-max] n", "load avg")
    width = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    print(f"machine: {machine()}")
    for r in [header, *rows]:
        print(" | ".join(c.ljust(w) for c, w in zip(r, width, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
