"""Run the user's callbacks (subscribers, hooks) on their own thread, safely."""

from __future__ import annotations

import importlib
import queue
import threading
from collections.abc import Callable
from typing import Any

import structlog

from .states import ModelEvent

log = structlog.get_logger("modelswap.hooks")

Callback = Callable[[ModelEvent], Any]


def resolve(spec: str) -> Callable[..., Any]:
    """`"pkg.module:attr.path"` → the callable it names (ImportError/AttributeError/TypeError)."""
    module_name, _, attr_path = spec.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in attr_path.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{spec} is not callable")
    return target  # type: ignore[no-any-return]


class Dispatcher:
    """Delivers events in order to subscribers on one thread; a raising or slow
    callback never delays the coordinator, and its exception is logged and counted."""

    def __init__(self) -> None:
        self._subscribers: list[Callback] = []
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[ModelEvent | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="modelswap-hooks", daemon=True)
        self.errors = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Deliver what is queued (bounded by `timeout`), then stop."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    def subscribe(self, callback: Callback) -> Callable[[], None]:
        """Add `callback`; returns a function that removes it."""
        with self._lock:
            self._subscribers = [*self._subscribers, callback]

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = [c for c in self._subscribers if c is not callback]

        return unsubscribe

    def emit(self, event: ModelEvent) -> None:
        self._queue.put(event)

    def _run(self) -> None:
        while (event := self._queue.get()) is not None:
            for callback in self._subscribers:
                try:
                    callback(event)
                except Exception:
                    self.errors += 1
                    log.exception("hook_failed", callback=getattr(callback, "__qualname__",
                                                                  repr(callback)),
                                  model=event.model, version=event.version,
                                  state=event.state.value)
