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
from modelswap.load import job as jobs
from modelswap.load.job import LoadJob, run_job

SERVE = frozenset({"serve"})


def frozen_heap() -> None:
    """As `ModelSwap.start()` does with `loader.gc_freeze` (the default)."""
    if not gc.get_freeze_count():
        gc.collect()
        gc.freeze()


def job_for(path: Path) -> LoadJob:
    return LoadJob("m", 1, path, 1, SERVE, ())


def test_a_loaded_model_is_frozen(exports: Exports) -> None:
    frozen_heap()
    loaded = run_job(job_for(exports.get(1.0)))
    assert loaded.model is not None
    frozen = {id(o) for o in gc.get_objects()}  # tracked objects outside the frozen generation
    assert id(loaded.model) not in frozen and id(loaded.model.offset) not in frozen
    assert gc.get_freeze_count() > 0


def test_nothing_frozen_without_a_frozen_start_up_heap(exports: Exports) -> None:
    frozen_heap()
    gc.unfreeze()
    try:
        loaded = run_job(job_for(exports.get(1.0)))
        assert gc.get_freeze_count() == 0
        assert id(loaded.model) in {id(o) for o in gc.get_objects()}
    finally:
        gc.collect()
        gc.freeze()


def test_collect_now_frees_cycles_in_the_frozen_generation() -> None:
    frozen_heap()

    class Node:
        other: Any = None

    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle
    ref = weakref.ref(a)
    gc.freeze()
    del a, b
    gc.collect()
    assert ref() is not None  # frozen: no collection looks at it
    found, _ = heap.collect_now()
    assert ref() is None and found >= 2
    assert gc.get_freeze_count() > 0  # frozen again


def test_collector_waits_while_a_load_runs() -> None:
    done = heap.collector.runs
    with jobs._short_switch_interval():  # a load is running
        heap.collect_soon()
        heap.collect_soon()  # merged with the first
        assert not heap.collector.wait(done + 1, 0.3)
        assert not jobs.wait_no_load(0)
    assert jobs.wait_no_load(5)
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
