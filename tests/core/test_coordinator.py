"""The coordinator loop and the facade around it: reloads applied whole, steps that raise,
handles apart from models, consumers that ignore their stop event, `acquire(wait=)`."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import structlog

from conftest import TIMEOUT, Exports, predict, wait_until, yaml_for
from modelswap import ModelSwap, State, VersionNotAvailable
from modelswap.config import parse_config
from modelswap.usercode import CONSUMERS_ABANDONED


def test_reload_that_times_out_is_never_applied(tmp_path: Path, exports: Exports,
                                                run_swap: Any) -> None:
    base, other = tmp_path / "m", tmp_path / "n"
    base.mkdir()
    other.mkdir()
    exports.publish(base, 1, 1.0)
    swap, _events = run_swap(yaml_for(base))
    swap.wait_until_available("m", timeout=TIMEOUT)
    release = threading.Event()
    swap._coordinator.call(lambda: release.wait(TIMEOUT))  # wedge the loop
    new = parse_config(yaml_for(base) + f"  - {{name: n, base_path: {other}}}\n")
    with pytest.raises(TimeoutError):
        swap.reload(new, timeout=0.5)
    release.set()
    wait_until(lambda: time_since_heartbeat(swap) < 0.9, what="the loop to run again")
    assert swap.config.models == parse_config(yaml_for(base)).models
    assert sorted(swap.status()) == ["m"]  # the late apply was dropped
    swap.reload(new)  # a later reload goes through
    assert sorted(swap.status()) == ["m", "n"]


def time_since_heartbeat(swap: ModelSwap) -> float:
    import time

    return time.monotonic() - swap._coordinator.heartbeat


def test_a_step_that_raises_is_logged_and_the_loop_goes_on(tmp_path: Path, exports: Exports,
                                                           run_swap: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    swap, _events = run_swap(yaml_for(base))
    swap.wait_until_available("m", timeout=TIMEOUT)

    def boom() -> None:
        raise RuntimeError("a bug")

    with structlog.testing.capture_logs() as logs:
        swap._coordinator.call(boom)
        wait_until(lambda: swap._coordinator.counters.step_failures == 1, what="the failure")
    assert any(e["event"] == "coordinator_step_failed" for e in logs)
    exports.publish(base, 2, 2.0)
    assert swap.wait_until_available("m", version=2, timeout=TIMEOUT) == 2
    assert swap.healthy()


def test_handles_release_twice_and_warn_when_held_long(tmp_path: Path, exports: Exports,
                                                       run_swap: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    swap, _events = run_swap(yaml_for(base, top="loader: {handle_warn_after: 200ms}"))
    swap.wait_until_available("m", timeout=TIMEOUT)
    served = swap.acquire("m")
    assert not hasattr(served, "retire") and not hasattr(served, "drop")
    with structlog.testing.capture_logs() as logs:
        wait_until(lambda: any(e["event"] == "handle_held_long" for e in logs),
                   what="the long-held warning")
    warning = next(e for e in logs if e["event"] == "handle_held_long")
    assert (warning["model"], warning["version"]) == ("m", 1)
    assert predict(served) == 2.0
    served.release()
    served.release()  # harmless
    assert served.model is None  # a released handle does not keep the model alive
    with swap.acquire("m") as again:
        assert again.version == 1


def test_removed_consumer_that_ignores_stop_never_blocks_a_reload(
        tmp_path: Path, exports: Exports, monkeypatch: pytest.MonkeyPatch) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    module = tmp_path / "stubborn_consumer.py"
    module.write_text("import threading\nforever = threading.Event()\n"
                      "def run(swap, stop):\n    forever.wait()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    text = yaml_for(base, top="service: {stop_timeout: 0.5s}\n")
    before = CONSUMERS_ABANDONED.value
    swap = ModelSwap(parse_config(text + "consumers: ['stubborn_consumer:run']\n")).start()
    try:
        swap.wait_until_available("m", timeout=TIMEOUT)
        swap.reload(parse_config(text), timeout=5)  # returns at once
        wait_until(lambda: CONSUMERS_ABANDONED.value == before + 1, what="abandoned")
        assert swap.healthy()
    finally:
        import stubborn_consumer  # type: ignore[import-not-found]

        stubborn_consumer.forever.set()
        swap.stop()


def test_acquire_waits_across_a_resource_swap(tmp_path: Path, exports: Exports,
                                              run_swap: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    swap, events = run_swap(yaml_for(base, top="loader: {swap_policy: resource}"))
    with pytest.raises(VersionNotAvailable):
        swap.acquire("m")
    exports.publish(base, 1, 1.0)
    with swap.acquire("m", wait=TIMEOUT) as served:  # waits for the first version
        assert served.version == 1
    held = swap.acquire("m")
    exports.publish(base, 2, 2.0)
    events.wait_state(1, State.UNLOADING)
    held.release()  # v1 ends, then v2 loads: a gap that acquire(wait=) rides out
    with swap.acquire("m", wait=TIMEOUT) as served:
        assert served.version in (1, 2)
    assert swap.wait_until_available("m", version=2, timeout=TIMEOUT) == 2
