"""BENCH-ONLY EXPERIMENTS: prototypes of daemon changes that reduce the GIL impact of loads.

Nothing here changes the daemon's source. Each mitigation monkeypatches
`modelswap.load.job.run_job` (what a load-pool worker calls for one version: contract check,
load, warmup; `load_version` on older daemons) or the process's garbage collector for the
duration of one experiment, and `undo()` restores everything.
The patches recommended to the daemon are written out in bench/README_SECTION.md.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Mitigation:
    name: str
    switch_interval: float | None = None  # seconds, while any load runs
    nice: int | None = None  # loader thread niceness during its load
    gc_freeze: bool = False  # gc.collect(); gc.freeze() before models load (at start-up)
    freeze_loaded: bool = False  # gc.freeze() after every load: the GC never walks models

    def apply(self) -> Callable[[], None]:
        """Install the experiment; returns `undo`."""
        import modelswap.load.job as loader

        attr = "run_job" if hasattr(loader, "run_job") else "load_version"
        original = getattr(loader, attr)
        if self.switch_interval is not None or self.nice is not None or self.freeze_loaded:
            setattr(loader, attr, _wrap(original, self))
        if self.gc_freeze:
            gc.collect()
            gc.freeze()

        def undo() -> None:
            setattr(loader, attr, original)
            if self.gc_freeze or self.freeze_loaded:
                gc.unfreeze()
                gc.collect()

        return undo


SHIPPED = Mitigation("as shipped")
ALL = (
    SHIPPED,
    Mitigation("switch interval 1 ms during loads", switch_interval=0.001),
    Mitigation("switch interval 0.2 ms during loads", switch_interval=0.0002),
    Mitigation("loader thread nice 19", nice=19),
    Mitigation("gc.freeze() at start-up", gc_freeze=True),
    Mitigation("gc.freeze() + switch 1 ms", gc_freeze=True, switch_interval=0.001),
)
BEST = ALL[-1]
# not in ALL (run by hand): also freeze each loaded version, so no collection walks models;
# a retired version is then freed by reference counting only (cycles in it would leak)
FREEZE_LOADED = Mitigation("gc.freeze() at start-up and after each load + switch 1 ms",
                           gc_freeze=True, switch_interval=0.001, freeze_loaded=True)
QUICK = (SHIPPED, BEST)

_lock = threading.Lock()
_active = 0
_saved_interval = 0.005


@contextlib.contextmanager
def _switch_interval(value: float) -> Iterator[None]:
    """Lower the switch interval while at least one load runs (loads may overlap)."""
    global _active, _saved_interval
    with _lock:
        if _active == 0:
            _saved_interval = sys.getswitchinterval()
            sys.setswitchinterval(value)
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                sys.setswitchinterval(_saved_interval)


@contextlib.contextmanager
def _niceness(value: int) -> Iterator[None]:
    """Linux: niceness is per thread (TID); set it on the calling loader thread only."""
    tid = threading.get_native_id()
    before = os.getpriority(os.PRIO_PROCESS, tid)
    os.setpriority(os.PRIO_PROCESS, tid, value)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):  # lowering needs CAP_SYS_NICE
            os.setpriority(os.PRIO_PROCESS, tid, before)


def _wrap(original: Callable[..., Any], m: Mitigation) -> Callable[..., Any]:
    def patched(*args: Any, **kwargs: Any) -> Any:
        with contextlib.ExitStack() as stack:
            if m.nice is not None:
                stack.enter_context(_niceness(m.nice))
            if m.switch_interval is not None:
                stack.enter_context(_switch_interval(m.switch_interval))
            result = original(*args, **kwargs)
        if m.freeze_loaded:
            gc.freeze()
        return result

    return patched


class GcPauses:
    """Records garbage-collector pauses (any thread) while installed."""

    def __init__(self) -> None:
        self.pauses: list[tuple[float, float, int]] = []  # (start, seconds, generation)
        self._started: dict[int, float] = {}

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        import time

        now = time.perf_counter()
        if phase == "start":
            self._started[threading.get_ident()] = now
        else:
            began = self._started.pop(threading.get_ident(), now)
            self.pauses.append((began, now - began, info["generation"]))

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def longest(self, start: float, end: float) -> tuple[float, int]:
        """(seconds, generation) of the longest pause that began in [start, end)."""
        inside = [(d, g) for s, d, g in self.pauses if start <= s < end]
        return max(inside, default=(0.0, -1))
