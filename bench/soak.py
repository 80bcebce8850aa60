"""Soak: many swaps of a small model under load, and many generated config files.

    .venv/bin/python bench/soak.py                     # 1,000 swaps (about 10 minutes)
    .venv/bin/python bench/soak.py --swaps 100
    .venv/bin/python bench/soak.py --swaps 0 --config-cases 1000

Swaps: versions are written alternately atomically (staged beside the base path, renamed
in) and by a non-atomic in-place copy (saved_model.pb first, like `cp -r`), while
`--consumers` threads call the served model and check each answer is the one its version
must give (version v answers 0.5 * 2 + v % 10). Checked: zero failed or wrong calls, every
retired version freed (a weakref to its model is dead after gc), RSS after the run at most
1.05x RSS after the first 100 swaps (or the first tenth, for short runs), and no growth in
threads or file descriptors. Config cases: `ModelSwap.from_yaml` gives a ModelSwap or a
ConfigError, and `modelswap check` exits 0 or 2 with one line and no traceback (in-process,
plus `--check-processes` real processes). Exit status 1 if anything failed.
"""

from __future__ import annotations

import argparse
import collections
import functools
import gc
import os
import shutil
import sys
import tempfile
import threading
import time
import warnings
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OFFSETS = 10  # distinct exports; version v is a copy of export v % OFFSETS
TIMEOUT = 120.0


def rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def answer(version: int) -> float:
    return 0.5 * 2.0 + version % OFFSETS


class Consumer(threading.Thread):
    def __init__(self, swap: Any, pace: float) -> None:
        super().__init__(daemon=True, name="soak-consumer")
        self.swap, self.pace = swap, pace
        self.calls = self.wrong = self.failed = 0
        self.problems: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        import tensorflow as tf

        x = tf.constant([[2.0]])
        while not self.halt.is_set():
            try:
                with self.swap.acquire("m") as served:
                    y = float(served.signatures["serving_default"](x=x)["y"][0][0])
                    version = served.version
                self.calls += 1
                if abs(y - answer(version)) > 1e-6:
                    self.wrong += 1
                    self.problems.append(f"v{version} answered {y}, not {answer(version)}")
            except Exception as exc:
                self.failed += 1
                self.problems.append(f"{type(exc).__name__}: {exc}")
            if self.pace:
                time.sleep(self.pace)


@dataclass
class SoakResult:
    swaps: int = 0
    seconds: float = 0.0
    calls: int = 0
    wrong: int = 0
    failed: int = 0
    retired: int = 0
    freed: int = 0
    rss_start: int = 0  # after the warm-up swaps
    rss_end: int = 0
    rss_max: int = 0
    threads_start: int = 0
    threads_end: int = 0
    threads_max: int = 0
    fds_start: int = 0
    fds_end: int = 0
    fds_max: int = 0
    load_seconds: list[float] = field(default_factory=list)
    swap_seconds: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def verdicts(self, slack: int = 0) -> list[str]:
        """What broke the promises (empty: a pass). `slack`: threads and fds other code in
        the process may open or close meanwhile (a leak grows with the swaps)."""
        bad = list(self.problems)
        if self.wrong or self.failed:
            bad.append(f"{self.failed} failed and {self.wrong} wrong calls")
        if self.freed != self.retired:
            bad.append(f"{self.retired - self.freed} of {self.retired} retired versions "
                       "were never freed")
        if self.rss_start and self.rss_end > 1.05 * self.rss_start:
            bad.append(f"RSS grew {self.rss_end / self.rss_start:.3f}x (limit 1.05x)")
        if self.threads_end > self.threads_start + slack:
            bad.append(f"threads grew {self.threads_start} → {self.threads_end}")
        if self.fds_end > self.fds_start + slack:
            bad.append(f"file descriptors grew {self.fds_start} → {self.fds_end}")
        return bad


def _copy_in_place(source: Path, dest: Path) -> None:
    """Like `cp -r`: saved_model.pb first, written in place, then the rest."""
    dest.mkdir()
    shutil.copyfile(source / "saved_model.pb", dest / "saved_model.pb")
    for item in sorted(source.iterdir()):
        if item.name == "saved_model.pb":
            continue
        if item.is_dir():
            shutil.copytree(item, dest / item.name, copy_function=shutil.copyfile)
        else:
            shutil.copyfile(item, dest / item.name)


def run_soak(swaps: int, *, consumers: int = 8, settle: float = 0.2, pace: float = 0.0005,
             work: Path | None = None, warmup_swaps: int | None = None,
             out: Any = print) -> SoakResult:
    """Swap `swaps` times under `consumers` checking threads; return the figures."""
    from modelswap import ModelSwap, State
    from modelswap.cli.demo import export_linear
    from modelswap.config import parse_config

    result = SoakResult()
    warmup_swaps = max(1, min(100, swaps // 10)) if warmup_swaps is None else warmup_swaps
    owned = work is None
    work = Path(tempfile.mkdtemp(prefix="modelswap-soak-")) if work is None else work
    exports, base, staging = work / "exports", work / "models" / "m", work / "staging"
    for folder in (exports, base, staging):
        folder.mkdir(parents=True, exist_ok=True)
    sources = [export_linear(exports / str(k), 0.5, float(k)) for k in range(OFFSETS)]
    shutil.copytree(sources[1], base / "1")

    ended: set[int] = set()
    durations: dict[int, float] = {}
    changed = threading.Condition()

    def on_event(event: Any) -> None:
        with changed:
            if event.state is State.END:
                ended.add(event.version)
            elif event.state is State.AVAILABLE:
                durations[event.version] = dict(event.durations).get("load", 0.0)
            changed.notify_all()

    config = parse_config(f"""
models:
  - name: m
    base_path: {base}
watch: {{settle: {settle}s}}
logging: {{level: warning}}
""")
    swap = ModelSwap(config)
    swap.subscribe(on_event)
    refs: dict[int, weakref.ref[Any]] = {}
    readers = [Consumer(swap, pace) for _ in range(consumers)]
    started = time.monotonic()
    with swap:
        swap.wait_until_available("m", version=1, timeout=TIMEOUT)
        with swap.acquire("m", version=1) as served:
            refs[1] = weakref.ref(served.model)
        for reader in readers:
            reader.start()
        for version in range(2, swaps + 2):
            begun = time.monotonic()
            source = sources[version % OFFSETS]
            if version % 2 == 0:  # atomic: staged beside the base path, renamed in
                shutil.copytree(source, staging / str(version))
                os.replace(staging / str(version), base / str(version))
            else:
                _copy_in_place(source, base / str(version))
            swap.wait_until_available("m", version=version, timeout=TIMEOUT)
            try:
                with swap.acquire("m", version=version) as served:
                    refs[version] = weakref.ref(served.model)
            except LookupError as exc:  # a wrong state: it must still be served
                result.problems.append(f"v{version}: {exc}")
            with changed:
                if not changed.wait_for(functools.partial(ended.__contains__, version - 1),
                                        TIMEOUT):
                    result.problems.append(f"v{version - 1} not unloaded in {TIMEOUT}s")
            shutil.rmtree(base / str(version - 1))
            result.swaps += 1
            result.swap_seconds.append(time.monotonic() - begun)
            done = version - 1
            if done == warmup_swaps or done % 10 == 0 or version == swaps + 1:
                gc.collect()
                rss, threads, fds = rss_bytes(), os_threads(), open_fds()
                if done == warmup_swaps:
                    result.rss_start, result.threads_start, result.fds_start = rss, threads, fds
                if done >= warmup_swaps:
                    result.rss_max = max(result.rss_max, rss)
                    result.threads_max = max(result.threads_max, threads)
                    result.fds_max = max(result.fds_max, fds)
                    # the last sample is the end: same conditions (consumers running)
                    result.rss_end, result.threads_end, result.fds_end = rss, threads, fds
                if done % 100 == 0 or version == swaps + 1:
                    out(f"  {done:5d} swaps  {time.monotonic() - started:7.1f}s  "
                        f"RSS {rss / 2**20:7.1f} MiB  threads {threads}  fds {fds}  "
                        f"calls {sum(r.calls for r in readers)}")
        for reader in readers:
            reader.halt.set()
        for reader in readers:
            reader.join(TIMEOUT)
    result.seconds = time.monotonic() - started
    current = swaps + 1
    gc.collect()
    retired = [v for v in refs if v != current]
    result.retired = len(retired)
    result.freed = sum(1 for v in retired if refs[v]() is None)
    result.calls = sum(r.calls for r in readers)
    result.wrong = sum(r.wrong for r in readers)
    result.failed = sum(r.failed for r in readers)
    result.problems += [p for r in readers for p in r.problems[:3]]
    result.load_seconds = [durations[v] for v in sorted(durations)]
    if owned:
        shutil.rmtree(work, ignore_errors=True)
    return result


def report(result: SoakResult, out: Any = print) -> None:
    def pct(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0

    mib = 2**20
    out(f"swaps: {result.swaps} in {result.seconds:.1f}s "
        f"(swap p50 {pct(result.swap_seconds, 0.5) * 1000:.0f} ms, "
        f"p95 {pct(result.swap_seconds, 0.95) * 1000:.0f} ms; load p50 "
        f"{pct(result.load_seconds, 0.5) * 1000:.0f} ms)")
    out(f"consumer calls: {result.calls}; failed: {result.failed}; wrong: {result.wrong}")
    out(f"retired versions freed: {result.freed}/{result.retired}")
    if result.rss_start:
        out(f"RSS: {result.rss_start / mib:.1f} MiB after the warm-up swaps, "
            f"max {result.rss_max / mib:.1f}, end {result.rss_end / mib:.1f} MiB "
            f"(end/start {result.rss_end / result.rss_start:.3f}x, "
            f"max/start {result.rss_max / result.rss_start:.3f}x)")
    out(f"OS threads: {result.threads_start} → {result.threads_end} (max "
        f"{result.threads_max}); fds: {result.fds_start} → {result.fds_end} "
        f"(max {result.fds_max})")


def run_config_cases(cases: int, processes: int, out: Any = print) -> list[str]:
    """Generated configs through from_yaml and `modelswap check`; problems found."""
    sys.path.insert(0, str(ROOT / "tests"))
    import config_cases
    from hypothesis import HealthCheck, assume, given, settings

    counts: collections.Counter[str] = collections.Counter()
    work = Path(tempfile.mkdtemp(prefix="modelswap-configs-"))
    problems: list[str] = []
    seen = [0]

    @settings(max_examples=cases, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(config_cases.file_contents)
    def one(content: bytes) -> None:
        assume(config_cases.safe_to_import(content))
        seen[0] += 1
        path = work / "c.yaml"
        path.write_bytes(content)
        verdict = config_cases.check_from_yaml(path)
        counts[f"from_yaml {verdict}"] += 1
        if verdict != "skipped":
            assert config_cases.check_command_in_process(path) == verdict
        if seen[0] <= processes:
            counts[f"process {config_cases.check_command(path)}"] += 1

    try:
        one()
    except Exception as exc:  # hypothesis re-raises the minimal failing case
        problems.append(f"config case failed: {type(exc).__name__}: {exc}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out(f"config cases: {seen[0]} ({dict(sorted(counts.items()))})")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--swaps", type=int, default=1000)
    parser.add_argument("--consumers", type=int, default=8)
    parser.add_argument("--settle", type=float, default=0.2,
                        help="watch.settle in seconds (default 0.2, the default config)")
    parser.add_argument("--config-cases", type=int, default=0,
                        help="generated config files to check (default 0: none)")
    parser.add_argument("--check-processes", type=int, default=50,
                        help="of those, how many through a real `modelswap check` process")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "daemon"))
    from modelswap.service.logs import configure, quiet_tensorflow

    configure("warning", "console", sys.stderr)
    quiet_tensorflow()
    # watchdog re-adding a watch on a re-created folder: harmless, and one per swap here
    warnings.filterwarnings("ignore", message="Callback with id", category=RuntimeWarning)
    problems: list[str] = []
    if args.swaps:
        print(f"soak: {args.swaps} swaps, {args.consumers} consumers")
        result = run_soak(args.swaps, consumers=args.consumers, settle=args.settle)
        report(result)
        problems += result.verdicts()
    if args.config_cases:
        problems += run_config_cases(args.config_cases, args.check_processes)
    for problem in problems:
        print(f"FAIL: {problem}")
    print("soak: " + ("FAIL" if problems else "pass"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
