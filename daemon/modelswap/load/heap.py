"""The garbage collector around loads: no full collection while a load runs, and one at
a moment of our choosing after it, which also frees what a retirement left behind.

A load allocates tens of thousands of long-lived Python objects (a ResNet50: ~60,000),
which triggers full collections; each walks the whole heap holding the GIL: 130-750 ms
during which no consumer runs (bench/, figure 3). So:

* `gc.freeze()` once at start-up (`loader.gc_freeze`, the default; `api.py`): TensorFlow's
  ~270,000 module objects are never walked again;
* `hold()`, from the moment a load starts: no automatic full (generation 2) collection;
  younger generations are collected as usual;
* `collect_soon()`, when a load ends, when a retired version's last handle
  is released (coordinator) and after a failed load: the collector thread waits 0.5 s
  (a swap's retirement follows its load once in-flight calls on the old version return:
  one collection for both), then until no load runs (at most 10 s: back-to-back loads
  get one every 10 s), runs one full collection and `release()`s the hold. A retired
  model is freed by reference counting the moment its last handle goes, but its function
  graphs (sometimes its variables too) sit in reference cycles: this collection frees them.

That collection walks every loaded model and the host's own long-lived objects (not the
frozen start-up heap): one GIL pause, 120-250 ms with two ResNet50s loaded on a busy
2-core machine (bench/, figure 3: consumer calls stalled 50-100 ms by it), once per swap,
0.5 s after it, not during a load. Python 3.11 cannot split it into smaller steps.
"""

from __future__ import annotations

import contextlib
import gc
import sys
import threading
import time
from collections.abc import Iterator

from modelswap.logger import get_logger

__all__ = ["Collector", "collect_now", "collect_soon", "collector", "hold", "release"]

log = get_logger("modelswap")
SETTLE = 0.5  # seconds between a request and its collection: a load's end and the
# retirement that follows it (once in-flight calls on the old version return) merge
HELD = 1 << 30  # generation 2's threshold while held: no automatic full collection
MAX_WAIT = 10.0  # seconds a collection waits for loads to end: back-to-back loads (many
# models, constant swaps) must not hold full collections off for ever

_lock = threading.Lock()
_saved_threshold: int | None = None  # generation 2's threshold before `hold()`


def hold() -> None:
    """Stop automatic full collections until `release()` (idempotent)."""
    global _saved_threshold
    with _lock:
        if _saved_threshold is None:
            gen0, gen1, gen2 = gc.get_threshold()
            _saved_threshold = gen2
            gc.set_threshold(gen0, gen1, HELD)


def release() -> None:
    """Give automatic full collections back (idempotent)."""
    global _saved_threshold
    with _lock:
        if _saved_threshold is not None:
            gen0, gen1, _ = gc.get_threshold()
            gc.set_threshold(gen0, gen1, _saved_threshold)
            _saved_threshold = None


def collect_now() -> tuple[int, float]:
    """One full collection: (unreachable objects found, seconds)."""
    started = time.perf_counter()
    found = gc.collect()
    return found, time.perf_counter() - started


class Collector:
    """A daemon thread that runs `collect_now()` when asked, `SETTLE` seconds later and
    once no load is running (at most `MAX_WAIT` seconds later), then releases the hold
    unless a load runs; requests made while it waits or collects merge into one more."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._wanted = False
        self._thread: threading.Thread | None = None
        self.runs = 0  # collections done so far
        self.last = (0.0, 0.0)  # time.perf_counter() at the last one's start and end

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
            time.sleep(SETTLE)
            wait_no_load(MAX_WAIT)
            with self._cond:
                self._wanted = False
            started = time.perf_counter()
            found, seconds = collect_now()
            if not loads_running():
                release()  # (a load that started meanwhile keeps it: it asks again)
            with self._cond:
                self.runs += 1
                self.last = (started, started + seconds)
                self._cond.notify_all()
            log.debug("gc_collected", unreachable=found, pause_ms=round(seconds * 1e3, 1))


collector = Collector()  # one per process: the garbage collector is


def collect_soon() -> None:
    """Run a full collection on the collector thread, once no load runs (see above)."""
    collector.request()


LOAD_SWITCH_INTERVAL = 0.001  # seconds; CPython's default is 0.005
_loads = threading.Condition()  # notified when the last running load ends
_loads_running = 0
_saved_interval = 0.005


@contextlib.contextmanager
def load_window() -> Iterator[None]:
    """While any load runs, threads hand the GIL over every 1 ms instead of 5 ms, and no
    automatic full collection runs; each load's end asks for one (see heap.py).

    `tf.saved_model.load` holds the GIL for most of its work in Python code; with the
    default interval each consumer call waits up to 5 ms per GIL hand-over (measured in
    bench/, figure 3: consumer p99 during a ResNet50 load 12.6x → 4.4x steady)."""
    global _loads_running, _saved_interval
    with _loads:
        if _loads_running == 0:
            _saved_interval = sys.getswitchinterval()
            sys.setswitchinterval(LOAD_SWITCH_INTERVAL)
            hold()
        _loads_running += 1
    try:
        yield
    finally:
        with _loads:
            _loads_running -= 1
            if _loads_running == 0:
                sys.setswitchinterval(_saved_interval)
                _loads.notify_all()
        collect_soon()  # merged with others; runs once no load runs, or in 10 s


def loads_running() -> int:
    """How many loads run right now."""
    return _loads_running


def wait_no_load(timeout: float | None = None) -> bool:
    """Block until no load runs (False if `timeout` passed first)."""
    with _loads:
        return _loads.wait_for(lambda: _loads_running == 0, timeout)


_startup_frozen = False


def freeze_startup() -> None:
    """Move every object alive now (TensorFlow's ~285k module objects among them) to the
    GC's permanent generation, once per process: the full collections a load triggers
    then stop walking them (measured in bench/, figure 3: 200-750 ms GIL pauses → ~130 ms).
    Cycles among objects that exist now are never collected afterwards."""
    global _startup_frozen
    if not _startup_frozen:
        import tensorflow  # noqa: F401  (its objects are what gets frozen)

        gc.collect()
        gc.freeze()
        _startup_frozen = True
