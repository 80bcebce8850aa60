"""Safe rollout: start-up fallback, failure memory across restarts, memory headroom,
identical-version reuse."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from conftest import Consumer, Events, Exports, answer, predict, wait_until, yaml_for
from modelswap import ModelSwap, State
from modelswap.config import parse_config
from modelswap.load.job import rss


def corrupt_copy(exports: Exports, base: Path, version: int, offset: float) -> Path:
    """A version whose variables data has the right size but wrong bytes: it passes the
    completeness gate and fails in tf.saved_model.load (checksum mismatch)."""
    staging = base.parent / f"corrupt-{version}"
    shutil.copytree(exports.get(offset), staging)
    data = staging / "variables" / "variables.data-00000-of-00001"
    data.write_bytes(bytes(255 - b for b in data.read_bytes()))
    os.replace(staging, base / str(version))
    return base / str(version)


def test_startup_falls_back_past_broken_newest(tmp_path: Path, exports: Exports,
                                               run_swap: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    exports.publish(base, 2, 2.0)
    corrupt_copy(exports, base, 3, 3.0)
    swap, events = run_swap(yaml_for(base))
    error = events.wait_state(3, State.ERROR)
    assert error.error_type == "LoadError" and "checksum" in (error.error or "")
    assert swap.wait_until_available("m", timeout=60) == 2
    with swap.acquire("m") as served:
        assert predict(served) == 3.0
    assert [(s.version, s.state) for s in swap.status()["m"]] == [
        (3, State.ERROR), (2, State.AVAILABLE)]
    assert State.AVAILABLE not in events.states(1)


def test_failures_remembered_across_restarts(tmp_path: Path, exports: Exports) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    corrupt_copy(exports, base, 2, 2.0)
    # sizes only: the gate's checksums would catch this damage before any load
    text = yaml_for(base, top=f"service: {{state_dir: {tmp_path / 'state'}}}\n"
                              "watch: {verify: sizes}")
    for run in (1, 2):
        events = Events()
        swap = ModelSwap(parse_config(text))
        swap.subscribe(events)  # before start: see every event
        with swap:
            swap.wait_until_available("m", version=1, timeout=60)
            error = events.wait_state(2, State.ERROR)
        if run == 1:
            assert events.states(2) == [State.LOADING, State.ERROR]
        else:  # known bad files: not tried again before the good version serves
            assert events.states(2) == [State.ERROR]
            assert "remembered from an earlier run" in (error.error or "")
    assert (tmp_path / "state" / "failures.json").exists()
    # new files under the same number are tried again
    shutil.rmtree(base / "2")
    exports.publish(base, 2, 2.0)
    with ModelSwap(parse_config(text)) as swap:
        assert swap.wait_until_available("m", version=2, timeout=60) == 2


def test_memory_fallback_frees_the_old_version_first(tmp_path: Path, exports: Exports,
                                                     run_swap: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    swap, events = run_swap(yaml_for(base, top="loader: {memory_limit: 1MB, "
                                               "memory_policy: fallback}"))
    swap.wait_until_available("m", timeout=60)
    exports.publish(base, 2, 2.0)
    swap.wait_until_available("m", version=2, timeout=60)
    order = [(e.version, e.state) for e in events.items
             if (e.version, e.state) in ((1, State.END), (2, State.LOADING))]
    assert order == [(1, State.END), (2, State.LOADING)]  # a gap: resource-style


def test_memory_short_keeps_serving_then_loads_once_memory_is_freed(
        tmp_path: Path, exports: Exports, run_swap: Any) -> None:
    """The default `memory_policy: refuse`: the served version stays (0 failed calls), the
    new one is ERROR InsufficientMemory, and it loads by itself once memory is freed."""
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    ballast = bytearray(400 * 2**20)
    ballast[::4096] = b"\x01" * len(range(0, len(ballast), 4096))  # touch every page
    limit = rss() - 100 * 2**20  # short while the ballast is held, ample once freed
    swap, events = run_swap(yaml_for(base, top=f"loader: {{memory_limit: {limit}}}"))
    swap.wait_until_available("m", timeout=60)
    consumer = Consumer(swap, {1: answer(1.0), 2: answer(2.0)})
    consumer.start()
    exports.publish(base, 2, 2.0)
    error = events.wait_state(2, State.ERROR)
    assert error.error_type == "InsufficientMemory", error
    wait_until(lambda: consumer.calls.get(1, 0) > 20, what="v1 keeps answering")
    assert State.LOADING not in events.states(2)
    del ballast  # memory freed: the held version loads on the next look
    swap.wait_until_available("m", version=2, timeout=60)
    wait_until(lambda: consumer.calls.get(2, 0) > 5, what="v2 answers")
    consumer.stop()
    assert consumer.failures == []
    assert events.states(2) == [State.ERROR, State.LOADING, State.AVAILABLE]


def test_identical_version_reuses_the_loaded_model(tmp_path: Path, exports: Exports,
                                                   run_swap: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    swap, events = run_swap(yaml_for(base))
    swap.wait_until_available("m", timeout=60)
    held = swap.acquire("m")
    exports.publish(base, 2, 1.0)  # the same files under a new number
    available = events.wait_state(2, State.AVAILABLE)
    durations = dict(available.durations)
    assert "load" not in durations and "identify" in durations
    with swap.acquire("m") as served:
        assert served.version == 2 and served.model is held.model
        assert predict(served) == 2.0
    held.release()
    events.wait_state(1, State.END)
    with swap.acquire("m") as served:  # still usable after v1's handle was dropped
        assert predict(served) == 2.0
    exports.publish(base, 3, 3.0)  # different files load normally
    available = events.wait_state(3, State.AVAILABLE)
    assert "load" in dict(available.durations)
