"""The garbage collector around loads: keep full collections off the models' objects
while consumers run, and collect a retired model's cycles at a moment of our choosing.

A load allocates tens of thousands of long-lived Python objects (a ResNet50: ~60,000),
which triggers full collections; each walks the whole heap holding the GIL (TensorFlow's
~270,000 module objects, plus every loaded model): 130-750 ms during which no consumer
runs (bench/, figure 3). So, when the start-up heap is frozen (`loader.gc_freeze`, the
default: see `api._freeze_startup_heap`):

* `after_load()` freezes what each successful load left alive (`gc.freeze()`), so no
  automatic collection walks a served model again;
* a retired model is freed by reference counting the moment its last handle goes, but its
  function graphs (and often its variables) sit in reference cycles, now in the frozen
  generation where no automatic collection looks. `collect_soon()` (called when a retired
  version's last handle is released, and after a failed load) asks the collector thread
  to unfreeze, run one full collection and freeze again, as soon as no load runs. That
  collection is one GIL pause as long as a full collection of the whole heap (measured
  in bench/, figure 3: ~0.1-0.3 s), once per retirement, never during a load.

Python 3.11 puts unfrozen objects back in the oldest generation, so that collection
cannot be split into generations. Without a frozen start-up heap nothing is frozen and
the collector runs a plain `gc.collect()`.
"""

from __future__ import annotations

import gc
import threading
import time

from modelswap.load import job as jobs
from modelswap.logger import get_logger

__all__ = ["Collector", "after_load", "collect_now", "collect_soon", "collector"]

log = get_logger("modelswap")


def after_load() -> None:
    """Freeze what a successful load left alive, if the start-up heap is frozen."""
    if gc.get_freeze_count():
        gc.freeze()


def collect_now() -> tuple[int, float]:
    """One full collection of the whole heap, frozen part included (refrozen after):
    (unreachable objects found, seconds)."""
    started = time.perf_counter()
    frozen = gc.get_freeze_count() > 0
    if frozen:
        gc.unfreeze()
    try:
        found = gc.collect()
    finally:
        if frozen:
            gc.freeze()
    return found, time.perf_counter() - started


class Collector:
    """A daemon thread that runs `collect_now()` when asked, once no load is running;
    requests made while it waits or collects are merged into one more collection."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._wanted = False
        self._thread: threading.Thread | None = None
        self.runs = 0  # collections done so far
        self.last_s = 0.0  # how long the last one took

    def request(self) -> None:
        """Ask for a collection (returns at once)."""
        with self._cond:
            self._wanted = True
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="modelswap-gc")
                self._thread.start()
            self._cond.notify_all()

    def wait(self, runs: int, timeout: float) -> bool:
        """Block until at least `runs` collections are done (for tests and bench/)."""
        with self._cond:
            return self._cond.wait_for(lambda: self.runs >= runs, timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._wanted)
            jobs.wait_no_load()
            with self._cond:
                self._wanted = False
            found, seconds = collect_now()
            with self._cond:
                self.runs += 1
                self.last_s = seconds
                self._cond.notify_all()
            log.debug("gc_collected", unreachable=found, pause_ms=round(seconds * 1e3, 1))


collector = Collector()  # one per process: the garbage collector is


def collect_soon() -> None:
    """Collect cyclic garbage (a retired model's) on the collector thread, once no load runs."""
    collector.request()
