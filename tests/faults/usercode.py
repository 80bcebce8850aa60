"""User code the in-process fault tests name in their configs (`faults.usercode:...`)."""

from __future__ import annotations

import threading
from typing import Any

from modelswap import ModelEvent


class Gate:
    """A one-shot blocker: once `arm()`ed, the next call to `pass_through()` blocks until
    `release()` (or 60 s)."""

    def __init__(self) -> None:
        self.armed = threading.Event()
        self.entered = threading.Event()
        self.released = threading.Event()
        self.calls = 0

    def arm(self) -> None:
        self.entered.clear()
        self.released.clear()
        self.armed.set()

    def release(self) -> None:
        self.released.set()

    def pass_through(self) -> None:
        self.calls += 1
        if self.armed.is_set():
            self.armed.clear()
            self.entered.set()
            self.released.wait(60)


WARMUP = Gate()
HOOK = Gate()
FAIL_WARMUP = threading.Event()
RAISED: list[str] = []


def held_warmup(model: Any) -> None:
    """A warmup that blocks while WARMUP is armed (a load in progress, for as long as the
    test wants)."""
    WARMUP.pass_through()


def failing_warmup(model: Any) -> None:
    """Raises while FAIL_WARMUP is set."""
    if FAIL_WARMUP.is_set():
        raise RuntimeError("warmup went wrong")


def raising_hook(event: ModelEvent) -> None:
    RAISED.append(f"{event.version} {event.state.value}")
    raise RuntimeError("hook went wrong")


def sleeping_hook(event: ModelEvent) -> None:
    """Sleeps up to 60 s on the first event after HOOK.arm() (the test lets it go)."""
    HOOK.pass_through()


def crashing_consumer(swap: Any, stop: threading.Event) -> None:
    with swap.acquire("m"):
        pass
    raise RuntimeError("consumer went wrong")
