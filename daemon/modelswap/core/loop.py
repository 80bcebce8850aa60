"""The coordinator's loop: one thread, one queue of typed messages, timers, a heartbeat.

What the messages mean is the coordinator's business (`coordinator.py`); this module only
runs steps, so that one exception in one step never ends the thread that owns the state.
"""

from __future__ import annotations

import heapq
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from modelswap.core.messages import Call, Hint, Message, Stop, model_of
from modelswap.logger import get_logger

log = get_logger("modelswap")
HEARTBEAT_INTERVAL = 1.0  # the loop wakes at least this often, so `heartbeat` stays fresh


class _Failures(Protocol):
    step_failures: int


class Loop:
    """Runs `_step` after every batch of messages, `_handle` per message, `_on_timer` when
    a scheduled time comes, `_rescan` every `rescan_interval()`, `_tick` every loop, and
    `_shutdown` once stopped. Subclasses implement those. `_take_touched` tells `_step`
    which models a message, timer or rescan touched since the last step."""

    def __init__(self, rescan_interval: Callable[[], float], counters: _Failures) -> None:
        self._rescan_interval = rescan_interval
        self._failures = counters
        self._queue: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self._timers: list[tuple[float, str]] = []
        self._thread = threading.Thread(target=self._run, name="modelswap-coordinator",
                                        daemon=True)
        self.heartbeat = time.monotonic()
        self._touched: set[str] | None = None  # None: every model

    def _touch(self, name: str | None) -> None:
        """Mark `name` (None: every model) for the next `_step`."""
        if name is None:
            self._touched = None
        elif self._touched is not None:
            self._touched.add(name)

    def _take_touched(self) -> set[str] | None:
        touched, self._touched = self._touched, set()
        return touched

    @property
    def alive(self) -> bool:
        """The coordinator thread is running (for health checks)."""
        return self._thread.is_alive()

    # -- called from other threads -------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        if self._thread.is_alive():
            self._queue.put(Stop())
            self._thread.join(timeout)

    def hint(self, name: str, path: Path, moved_to: bool = False) -> None:
        """A watcher saw `path` of model `name` change (`moved_to`: renamed there)."""
        self._queue.put(Hint(name, path, moved_to, time.monotonic()))

    def call(self, fn: Callable[[], None]) -> None:
        """Run `fn` on the coordinator thread."""
        self._queue.put(Call(fn))

    def run_on_thread(self, fn: Callable[[], None], timeout: float, what: str) -> None:
        """Run `fn` on the loop thread and wait for it (at once when the thread is not
        running). Raises what `fn` raised, or `TimeoutError` after `timeout`; a call given
        up on never runs late."""
        lock = threading.Lock()
        outcome: list[BaseException | None] = []  # [None] done, [exc] failed, [] pending
        done = threading.Event()

        def run() -> None:
            with lock:
                if done.is_set():
                    return  # the caller gave up
                try:
                    fn()
                    outcome.append(None)
                except Exception as exc:
                    outcome.append(exc)
                finally:
                    done.set()

        if not self.alive:
            run()
        else:
            self.call(run)
            done.wait(timeout)
            with lock:
                if not done.is_set():
                    done.set()
                    raise TimeoutError(f"{what} in {timeout}s")
        if outcome and outcome[0] is not None:
            raise outcome[0]

    # -- the thread ------------------------------------------------------------------------
    def _schedule(self, at: float, name: str) -> None:
        if (at, name) not in self._timers:
            heapq.heappush(self._timers, (at, name))

    def _run(self) -> None:
        next_rescan = time.monotonic() + self._rescan_interval()
        running = True
        while running:
            self._guarded(self._step)
            now = time.monotonic()
            deadline = min([next_rescan, now + HEARTBEAT_INTERVAL]
                           + [t for t, _ in self._timers[:1]])
            try:
                batch = [self._queue.get(timeout=max(deadline - now, 0.0))]
            except queue.Empty:
                batch = []
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self.heartbeat = now = time.monotonic()
            for msg in batch:
                if isinstance(msg, Stop):
                    running = False
                else:
                    self._touch(model_of(msg))
                    self._guarded(self._handle, msg)
            while self._timers and self._timers[0][0] <= now:
                _, name = heapq.heappop(self._timers)
                self._touch(name)
                self._guarded(self._on_timer, name)
            if now >= next_rescan:
                next_rescan = now + self._rescan_interval()
                self._touch(None)
                self._guarded(self._rescan)
            self._guarded(self._tick)
        self._shutdown()

    def _guarded(self, fn: Callable[..., None], *args: object) -> None:
        """Run one step; an exception is logged and counted, and the loop goes on (a bug must
        not end the one thread that owns the state)."""
        try:
            fn(*args)
        except Exception:
            self._failures.step_failures += 1
            log.exception("coordinator_step_failed", step=getattr(fn, "__name__", repr(fn)),
                          message=type(args[0]).__name__ if args else None)

    def _step(self) -> None:
        raise NotImplementedError

    def _handle(self, msg: Message) -> None:
        raise NotImplementedError

    def _on_timer(self, name: str) -> None:
        raise NotImplementedError

    def _rescan(self) -> None:
        raise NotImplementedError

    def _tick(self) -> None:
        raise NotImplementedError

    def _shutdown(self) -> None:
        raise NotImplementedError
