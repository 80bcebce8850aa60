"""Shared bench plumbing: result rows, statistics, machine facts, configs, consumers, RSS."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PASS, FAIL, INFO, NA = "pass", "FAIL", "info", "n/a"


@dataclass
class Row:
    """One line of the result table."""

    figure: str
    measured: str
    target: str = "—"
    baseline: str = "—"
    ratio: str = "—"
    verdict: str = INFO
    load: str = ""  # the 1-minute load average at the figure's start and end


@dataclass
class Context:
    """What every figure gets: the mode, the exported models and where to put things."""

    quick: bool
    work: Path
    exports: dict[str, list[Path]]  # kind ("tiny", "dense", "big") -> distinct exports
    big_label: str  # "ResNet50" or the --quick stand-in's name
    notes: list[str] = field(default_factory=list)

    def n(self, quick: int, full: int) -> int:
        return quick if self.quick else full

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  · {text}", file=sys.stderr, flush=True)


# -- statistics ---------------------------------------------------------------------------
def pct(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0..100), nearest-rank on the sorted values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def med(values: Iterable[float]) -> float:
    data = list(values)
    return statistics.median(data) if data else float("nan")


def spread(values: Sequence[float], scale: float = 1.0, fmt: str = "{:.2f}") -> str:
    """"median [min-max] (n=…)" of `values` times `scale`."""
    if not values:
        return "no data"
    vals = [v * scale for v in values]
    if len(vals) == 1:
        return fmt.format(vals[0])
    return (f"{fmt.format(med(vals))} [{fmt.format(min(vals))}-{fmt.format(max(vals))}]"
            f" n={len(vals)}")


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms" if seconds < 10 else f"{seconds:.1f} s"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "—"


def verdict(ok: bool) -> str:
    return PASS if ok else FAIL


# -- machine ------------------------------------------------------------------------------
def loadavg() -> float:
    """The 1-minute load average (NaN where unknown)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import tensorflow as tf

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{cpu}, {os.cpu_count()} cores, Linux {platform.release()}, "
            f"Python {platform.python_version()}, TensorFlow {tf.__version__}, "
            f"load average at start {load:.2f}; modelswap {_revision()}")


def _revision() -> str:
    """The daemon code measured: MODELSWAP_BENCH_REV, else its git commit (+ dirty)."""
    import subprocess

    import modelswap

    if os.environ.get("MODELSWAP_BENCH_REV"):
        return os.environ["MODELSWAP_BENCH_REV"]
    where = Path(modelswap.__file__).parent
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=where, text=True,
                             capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "."], cwd=where, text=True,
                               capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"from {where}"
    return f"{rev}{' + uncommitted changes' if dirty else ''}"


# -- configs ------------------------------------------------------------------------------
def make_config(models: dict[str, Path], *, mode: str = "inotify", threads: int = 2,
                swap_policy: str = "availability", poll_interval: float = 1.0,
                rescan: float = 30.0, extra: dict[str, str] | None = None) -> Any:
    """A parsed modelswap Config for `models` (name -> base path)."""
    from modelswap.config import parse_config

    lines = ["models:"]
    for name, base in models.items():
        lines += [f"  - name: {name}", f"    base_path: {base}"]
        for key, value in (extra or {}).items():
            lines.append(f"    {key}: {value}")
    lines += ["watch:", f"  mode: {mode}", f"  poll_interval: {poll_interval}",
              f"  rescan_interval: {rescan}",
              "loader:", f"  threads: {threads}", f"  swap_policy: {swap_policy}"]
    return parse_config("\n".join(lines) + "\n")


def warmup_supported() -> bool:
    """True once `ModelConfig` has a `warmup` field (issue 5)."""
    from modelswap.config import ModelConfig

    return "warmup" in ModelConfig.model_fields


def wait_for(pred: Callable[[], bool], timeout: float, what: str, step: float = 0.002) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


def settled(swap: Any, name: str) -> bool:
    """Exactly one version of `name`, AVAILABLE (the old one fully retired)."""
    from modelswap import State

    found = swap.status().get(name, ())
    return len(found) == 1 and found[0].state is State.AVAILABLE


# -- inputs -------------------------------------------------------------------------------
def inputs_for(signature: Any) -> dict[str, Any]:
    """Zeros for every input of a concrete function (unknown dims -> 1)."""
    import tensorflow as tf

    specs = signature.structured_input_signature[1]
    return {name: tf.zeros([d if d is not None else 1 for d in spec.shape], spec.dtype)
            for name, spec in specs.items()}


# -- consumers ----------------------------------------------------------------------------
class Consumers:
    """`n` threads calling `name`'s serving_default through `swap.acquire` in a loop."""

    def __init__(self, swap: Any, name: str, n: int) -> None:
        import tensorflow as tf

        self.swap, self.name = swap, name
        self.x = tf.constant([[2.0]])
        self.samples: list[list[tuple[float, float]]] = [[] for _ in range(n)]
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, args=(i,), daemon=True,
                                          name=f"bench-consumer-{i}") for i in range(n)]

    def __enter__(self) -> Consumers:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()

    def _loop(self, i: int) -> None:
        out, pc, x = self.samples[i], time.perf_counter, self.x
        while not self._stop.is_set():
            start = pc()
            try:
                with self.swap.acquire(self.name) as served:
                    served.signatures["serving_default"](x=x)
            except Exception as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
            out.append((start, pc() - start))

    def window(self, start: float, end: float) -> list[float]:
        """Latencies (s) of calls that started in [start, end)."""
        return [d for per in self.samples for s, d in per if start <= s < end]


# -- memory -------------------------------------------------------------------------------
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * _PAGE / 2**20


def reset_peak_rss() -> bool:
    """Reset VmHWM (Linux clear_refs 5); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")
