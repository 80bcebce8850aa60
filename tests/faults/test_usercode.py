"""The user's code misbehaving: hooks that raise or sleep, a consumer that raises, a warmup
that raises. None of it may stop the served version answering, or later swaps."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from conftest import wait_until
from faults import usercode
from faults.helpers import Scene
from modelswap import State
from modelswap.usercode import CONSUMER_ERRORS, HOOK_ERRORS


@pytest.fixture
def hook_gate() -> Iterator[usercode.Gate]:
    yield usercode.HOOK
    usercode.HOOK.armed.clear()
    usercode.HOOK.release()


def test_hook_that_raises(scene: Callable[..., Scene]) -> None:
    hooks = "hooks: {on_loading: [H], on_available: [H], on_error: [H], on_retired: [H]}\n"
    s = scene(top=hooks.replace("H", "faults.usercode:raising_hook"))
    before = HOOK_ERRORS.value
    s.publish(2)
    s.serves(2)
    s.events.wait_state(1, State.END)  # the subscribers still get every event
    wait_until(lambda: HOOK_ERRORS.value >= before + 3, what="hook errors counted")
    assert {"2 LOADING", "2 AVAILABLE", "1 UNLOADING"} <= set(usercode.RAISED)
    assert (s.swap.metrics.registry.get_sample_value("modelswap_hook_errors_total")
            or 0) >= 3
    s.finish()


def test_hook_that_sleeps(scene: Callable[..., Scene], hook_gate: usercode.Gate) -> None:
    """A hook sleeping (up to 60 s here) holds up the hook thread only: swaps go on, status
    and the snapshot-read metrics are current. Subscribers and event-counted metrics
    (modelswap_swaps_total) lag until it returns; stop() does not wait for it for long."""
    s = scene(top="hooks: {on_available: ['faults.usercode:sleeping_hook']}\n")
    hook_gate.arm()
    s.publish(2)
    assert hook_gate.entered.wait(60)  # the hook sleeps on v2's AVAILABLE
    s.serves(2)
    s.publish(3)
    s.serves(3)
    wait_until(lambda: s.status(2) is None, what="v2 retired and unloaded")
    registry = s.swap.metrics.registry
    assert registry.get_sample_value("modelswap_served_version", {"model": "m"}) == 3
    assert State.AVAILABLE not in s.events.states(3)  # subscribers wait behind the hook
    hook_gate.release()
    s.events.wait_state(3, State.AVAILABLE)
    assert registry.get_sample_value("modelswap_swaps_total", {"model": "m"}) == 3
    hook_gate.arm()  # sleeping again, on v4's AVAILABLE, when the swap stops
    s.publish(4)
    assert hook_gate.entered.wait(60)
    s.finish()
    started = time.monotonic()
    s.swap.stop()
    assert time.monotonic() - started < 30  # bounded (the hook thread is abandoned)


def test_consumer_that_raises(scene: Callable[..., Scene]) -> None:
    before = CONSUMER_ERRORS.value
    s = scene(top="consumers: ['faults.usercode:crashing_consumer']\n")
    wait_until(lambda: CONSUMER_ERRORS.value >= before + 2, what="two consumer crashes")
    s.publish(2)
    s.serves(2)
    assert (s.swap.metrics.registry.get_sample_value("modelswap_consumer_errors_total")
            or 0) >= 2
    s.finish()


def test_warmup_that_raises(scene: Callable[..., Scene]) -> None:
    s = scene("warmup: faults.usercode:failing_warmup")
    usercode.FAIL_WARMUP.set()
    try:
        s.publish(2)
        status = s.wait_status(2, State.ERROR, "WarmupFailed")
        assert "RuntimeError: warmup went wrong" in (status.error or "")
        s.keeps_answering(1)
    finally:
        usercode.FAIL_WARMUP.clear()
    s.publish(3)
    s.serves(3)
    s.finish()
