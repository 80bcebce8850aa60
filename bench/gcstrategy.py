"""GC strategies compared in the same run (figures 3 and 5), and GC pause recording.

The shipped strategy (load/heap.py with `loader.gc_freeze: true`, the default) runs as is.
The baseline, `previous default` (the default before issue 15: the start-up `gc.freeze()`
and the 1 ms switch interval during loads, nothing else, so automatic full collections run
during loads and a retired model's cycles wait for one), is installed by swapping functions
of `modelswap.load.heap` for one measurement; `undo()` restores them. (The strategy that
lost, `gc.freeze()` after each load and unfreeze + collect at retirement, is in git history
and in bench/README.md.)
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Strategy:
    name: str
    collects: bool = True  # a daemon-chosen collection follows each swap
    hold: bool = True  # no automatic full collection during loads (shipped)

    def apply(self) -> Callable[[], None]:
        """Install the strategy; returns `undo`."""
        from modelswap.load import heap

        saved = (heap.hold, heap.collect_soon)
        if not self.hold:
            heap.hold = lambda: None
        if not self.collects:
            heap.collect_soon = lambda: None

        def undo() -> None:
            heap.hold, heap.collect_soon = saved
            heap.release()

        return undo


SHIPPED = Strategy("shipped: no full collection during loads, one after each swap")
PREVIOUS = Strategy("previous default: start-up freeze only", collects=False, hold=False)


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
