"""The garbage collector around loads (load/heap.py): each loaded model is frozen, and a
retired model's cycles are collected by the gc thread once no load runs.

Behaviour only (what is frozen, what is freed, what waits for what): no timing asserted.
"""

from __future__ import annotations

import gc
import threading
import weakref
from pathlib import Path
from typing import Any

from conftest import Exports, predict, wait_until, yaml_for
from modelswap import State
from modelswap.load import heap
from modelswap.load.job import LoadJob, run_job

SERVE = frozenset({"serve"})


def job_for(path: Path) -> LoadJob:
    return LoadJob("m", 1, path, 1, SERVE, ())


def test_no_full_collection_during_a_load_then_one_after_it(exports: Exports) -> None:
    before = gc.get_threshold()
    runs = heap.collector.runs
    seen: list[int] = []

    def warm(model: Any) -> None:  # runs inside the load, on the warmup thread
        seen.append(gc.get_threshold()[2])

    WARM.append(warm)
    try:
        job = LoadJob("m", 1, exports.get(1.0), 1, SERVE, (), warmup="test_heap:warm_hook")
        loaded = run_job(job)
    finally:
        WARM.clear()
    assert loaded.model is not None
    assert seen == [heap.HELD]  # automatic full collections were held during the load
    assert heap.collector.wait(runs + 1, 60)  # one full collection after it...
    assert heap.wait_no_load(5)
    assert gc.get_threshold() == before  # ...then the hold is released


WARM: list[Any] = []


def warm_hook(model: Any) -> None:
    for fn in WARM:
        fn(model)


def test_hold_and_release_are_idempotent() -> None:
    before = gc.get_threshold()
    heap.hold()
    heap.hold()
    assert gc.get_threshold() == (before[0], before[1], heap.HELD)
    heap.release()
    heap.release()
    assert gc.get_threshold() == before


def test_collect_now_frees_cycles() -> None:
    class Node:
        other: Any = None

    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle
    ref = weakref.ref(a)
    del a, b
    found, _ = heap.collect_now()
    assert ref() is None and found >= 2


def test_collector_waits_while_a_load_runs() -> None:
    with heap.load_window():  # a load is running
        done = heap.collector.runs
        heap.collect_soon()
        heap.collect_soon()  # merged with the first
        assert not heap.collector.wait(done + 1, 0.5)
        assert not heap.wait_no_load(0) and heap.loads_running() == 1
    assert heap.wait_no_load(5)
    assert heap.collector.wait(done + 1, 30)


def test_retired_model_and_variables_freed_after_last_release(
        tmp_path: Path, exports: Exports, run_swap: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    swap, events = run_swap(yaml_for(base))
    swap.wait_until_available("m", timeout=60)
    held = swap.acquire("m")
    refs = [weakref.ref(held.model), weakref.ref(held.model.offset),
            weakref.ref(held.model.slope), weakref.ref(held.signatures["serving_default"])]
    runs = heap.collector.runs
    exports.publish(base, 2, 2.0)
    swap.wait_until_available("m", version=2, timeout=60)
    events.wait_state(1, State.UNLOADING)
    assert predict(held) == 2.0  # a retired version stays usable while held
    assert all(r() is not None for r in refs)
    release = threading.Thread(target=held.release)  # released on another thread, as a
    release.start()                                   # consumer would
    release.join()
    del held
    events.wait_state(1, State.END)
    assert heap.collector.wait(runs + 1, 60)
    wait_until(lambda: all(r() is None for r in refs), what="model and variables freed")
    with swap.acquire("m") as served:
        assert predict(served) == 3.0


def test_back_to_back_loads_still_get_a_collection(monkeypatch: Any) -> None:
    monkeypatch.setattr(heap, "MAX_WAIT", 0.2)
    with heap.load_window():  # loads that never stop running
        done = heap.collector.runs
        heap.collect_soon()
        assert heap.collector.wait(done + 1, 30)
        assert gc.get_threshold()[2] == heap.HELD  # a load runs: still held
    assert heap.collector.wait(done + 2, 30)  # the load's end asked for another
