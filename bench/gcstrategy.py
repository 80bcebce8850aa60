"""GC strategies compared in the same run (figures 3 and 5), and GC pause recording.

The shipped strategy (load/heap.py with `loader.gc_freeze: true`, the default) runs as is.
The others are what it was chosen over, installed by swapping functions of
`modelswap.load.heap` / `modelswap.load.job` for one measurement; `undo()` restores them.
All keep the start-up `gc.freeze()` and the 1 ms switch interval during loads:

* `previous default`: nothing else (the default before issue 15): automatic full
  collections run during loads, and a retired model's cycles wait for one;
* `freeze each load`: `gc.freeze()` after each load, so no automatic collection walks a
  model; after a retirement, unfreeze, one full collection, freeze (walks the whole heap,
  TensorFlow's start-up objects included).
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Strategy:
    name: str
    collects: bool = True  # a daemon-chosen collection follows each swap
    hold: bool = True  # no automatic full collection during loads (shipped)
    freeze_each_load: bool = False

    def apply(self) -> Callable[[], None]:
        """Install the strategy; returns `undo`."""
        from modelswap.load import heap
        from modelswap.load import job as jobs

        saved = (heap.hold, heap.collect_soon, heap.collect_now, jobs.run_job)
        if not self.hold:
            heap.hold = lambda: None
        if not self.collects:
            heap.collect_soon = lambda: None
        if self.freeze_each_load:
            run_job = jobs.run_job

            def frozen_after(job: Any) -> Any:
                loaded = run_job(job)
                gc.freeze()
                return loaded

            def whole_heap() -> tuple[int, float]:
                started = time.perf_counter()
                gc.unfreeze()
                found = gc.collect()
                gc.freeze()
                return found, time.perf_counter() - started

            jobs.run_job = frozen_after
            heap.collect_now = whole_heap

        def undo() -> None:
            heap.hold, heap.collect_soon, heap.collect_now, jobs.run_job = saved
            heap.release()
            if self.freeze_each_load:  # back to the start-up freeze only
                gc.unfreeze()
                gc.collect()
                gc.freeze()

        return undo


SHIPPED = Strategy("shipped: no full collection during loads, one after each swap")
PREVIOUS = Strategy("previous default: start-up freeze only", collects=False, hold=False)
FREEZE_EACH = Strategy("freeze each load + unfreeze and collect at retirement", hold=False,
                       freeze_each_load=True)
ALTERNATIVES = (PREVIOUS, FREEZE_EACH)


def collections_done() -> int:
    from modelswap.load import heap

    return heap.collector.runs


def wait_collection(after: int, timeout: float = 60.0) -> bool:
    """Wait for the gc thread's collection number `after + 1` (False if none came)."""
    from modelswap.load import heap

    return heap.collector.wait(after + 1, timeout)


class GcPauses:
    """Records garbage-collector pauses (any thread) while installed."""

    def __init__(self) -> None:
        self.pauses: list[tuple[float, float, int]] = []  # (start, seconds, generation)
        self._started: dict[int, float] = {}

    def _callback(self, phase: str, info: dict[str, int]) -> None:
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
