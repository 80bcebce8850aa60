"""Run the user's callbacks (subscribers, hooks) on their own thread, safely."""

from __future__ import annotations

import importlib
import queue
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from modelswap.config import Config
from modelswap.errors import ConfigError
from modelswap.events import ModelEvent, State
from modelswap.logger import get_logger

log = get_logger("modelswap.hooks")

Callback = Callable[[ModelEvent], Any]


class _Count:
    """A process-wide error count (read by the metrics module)."""

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def inc(self) -> None:
        with self._lock:
            self.value += 1


HOOK_ERRORS = _Count()
CONSUMER_ERRORS = _Count()
CONSUMERS_ABANDONED = _Count()  # consumers that ignored their stop event past stop_timeout


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
                    HOOK_ERRORS.inc()
                    log.exception("subscriber_failed", callback=getattr(callback, "__qualname__",
                                                                  repr(callback)),
                                  model=event.model, version=event.version,
                                  state=event.state.value)


HOOK_STATES = {"on_loading": State.LOADING, "on_available": State.AVAILABLE,
               "on_error": State.ERROR, "on_retired": State.UNLOADING}


@dataclass(frozen=True)
class UserCode:
    """The hooks and consumers of a config, imported and checked."""

    hooks: Mapping[State, tuple[tuple[str, Callable[..., Any]], ...]]
    consumers: Mapping[str, Callable[..., Any]]


def load_user_code(config: Config) -> UserCode:
    """Import every hook and consumer; a failure is a `ConfigError` naming the key."""
    for root in reversed(config.python_path):
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))

    def load(spec: str, *key: str | int) -> Callable[..., Any]:
        try:
            return resolve(spec)
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc}" if not isinstance(exc, TypeError) else str(exc)
            raise ConfigError(f"cannot load {spec!r}: {detail}", file=config.source,
                              line=config.line_of(*key),
                              key=".".join(str(k) for k in key[:-1]) + f"[{key[-1]}]") from None

    hooks = {state: tuple((spec, load(spec, "hooks", field, i))
                          for i, spec in enumerate(getattr(config.hooks, field)))
             for field, state in HOOK_STATES.items()}
    consumers = {spec: load(spec, "consumers", i) for i, spec in enumerate(config.consumers)}
    return UserCode(hooks, consumers)


class HookRouter:
    """A subscriber that calls the configured hooks for each event's state."""

    def __init__(self, code: UserCode) -> None:
        self.code = code

    def __call__(self, event: ModelEvent) -> None:
        for spec, hook in self.code.hooks.get(event.state, ()):
            try:
                hook(event)
            except Exception:
                HOOK_ERRORS.inc()
                log.exception("hook_failed", hook=spec, model=event.model,
                              version=event.version, state=event.state.value)


class Consumers:
    """Runs each consumer as `run(swap, stop_event)` in its own thread; one that raises
    (or returns before stop) is logged and restarted with exponential backoff."""

    def __init__(self, swap: Any, backoff: float = 1.0, max_backoff: float = 60.0) -> None:
        self._swap = swap
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._running: dict[str, tuple[threading.Thread, threading.Event]] = {}

    def start(self, consumers: Mapping[str, Callable[..., Any]],
              stop_timeout: float = 30.0) -> None:
        """Start the consumers not running yet; stop those no longer listed, without waiting
        for them (one that ignores its stop event is abandoned after `stop_timeout`)."""
        for spec in set(self._running) - set(consumers):
            thread, stop = self._running.pop(spec)
            stop.set()
            threading.Thread(target=self._reap, args=(spec, thread, stop_timeout), daemon=True,
                             name=f"modelswap-reap-{spec}").start()
        for spec, run in consumers.items():
            if spec not in self._running:
                stop = threading.Event()
                thread = threading.Thread(target=self._supervise, args=(spec, run, stop),
                                          name=f"modelswap-consumer-{spec}", daemon=True)
                self._running[spec] = (thread, stop)
                thread.start()

    def stop(self, timeout: float) -> list[str]:
        """Signal every consumer, wait up to `timeout` in all; returns those still running."""
        for _thread, stop in self._running.values():
            stop.set()
        deadline = time.monotonic() + timeout
        late = []
        for spec, (thread, _stop) in self._running.items():
            thread.join(max(deadline - time.monotonic(), 0.0))
            if thread.is_alive():
                late.append(spec)
                CONSUMERS_ABANDONED.inc()
        self._running.clear()
        return late

    @staticmethod
    def _reap(spec: str, thread: threading.Thread, timeout: float) -> None:
        thread.join(timeout)
        if thread.is_alive():
            CONSUMERS_ABANDONED.inc()
            log.warning("consumer_abandoned", consumer=spec, stop_timeout_s=timeout,
                        hint="it ignores its stop event; its thread runs on")

    def _supervise(self, spec: str, run: Callable[..., Any], stop: threading.Event) -> None:
        delay = self._backoff
        while not stop.is_set():
            started = time.monotonic()
            log.info("consumer_started", consumer=spec)
            try:
                run(self._swap, stop)
                if stop.is_set():
                    break
                log.warning("consumer_returned", consumer=spec, restart_in_s=delay)
            except Exception:
                CONSUMER_ERRORS.inc()
                log.exception("consumer_failed", consumer=spec, restart_in_s=delay)
            if time.monotonic() - started > self._max_backoff:
                delay = self._backoff  # it ran well for a while: start the backoff afresh
            if stop.wait(delay):
                break
            delay = min(delay * 2, self._max_backoff)
        log.info("consumer_stopped", consumer=spec)
