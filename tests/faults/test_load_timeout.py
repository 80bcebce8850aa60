"""A load that hangs: after `loader.load_timeout` the version is ERROR `LoadTimeout`, its
thread is abandoned and replaced, other models keep loading, and whatever the abandoned
thread returns later is ignored."""

from __future__ import annotations

import json
import os
import threading
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import TIMEOUT, Events, Exports, wait_until
from faults.helpers import Scene, stage, unblock_fifo
from modelswap import LoadError, LoadTimeout, ModelSwap, State
from modelswap.config import parse_config
from modelswap.load.job import Loaded, LoadJob
from modelswap.load.pool import LoadPool

DEBUG_INFO = Path("debug") / "saved_model_debug_info.pb"


def abandoned_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if "(abandoned)" in t.name]


def test_hung_load_times_out_and_other_models_keep_loading(
        tmp_path: Path, exports: Exports, run_swap: Callable[..., tuple[ModelSwap, Events]],
        fifo: Callable[[Path], Path]) -> None:
    """A FIFO at debug/saved_model_debug_info.pb: the completeness gate has no business
    there, and `tf.saved_model.load` blocks opening it (with the GIL released, like a read
    from a hung NFS server). One loader thread only: the second model can load only if
    the stuck thread was replaced."""
    m, other = tmp_path / "m", tmp_path / "other"
    m.mkdir()
    other.mkdir()
    exports.publish(m, 1, 1.0)
    swap, events = run_swap(f"""
models:
  - {{name: m, base_path: {m}}}
  - {{name: other, base_path: {other}}}
loader: {{threads: 1, load_timeout: 1s}}
http: {{listen: '127.0.0.1:0'}}
""")
    s = Scene(swap, events, m, exports)
    swap.wait_until_available("m", timeout=TIMEOUT)
    s.consumer.start()
    s.serves(1)

    staging = stage(exports, 2.0, tmp_path / "hangs")
    fifo(staging / DEBUG_INFO)
    os.replace(staging, m / "2")
    events.wait_state(2, State.LOADING, "m")
    status = s.wait_status(2, State.ERROR, "LoadTimeout")
    assert "did not finish within loader.load_timeout (1s)" in (status.error or ""), status
    s.keeps_answering(1)
    assert swap._coordinator._loads.abandoned == 1

    exports.publish(other, 1, 1.0)  # the pool still has a live worker
    swap.wait_until_available("other", timeout=TIMEOUT)

    samples = swap.metrics.registry
    wait_until(lambda: samples.get_sample_value(
        "modelswap_load_failures_total", {"model": "m", "reason": "LoadTimeout"}) == 1,
        what="the LoadTimeout failure counted")
    assert samples.get_sample_value("modelswap_model_version_state",
                                    {"model": "m", "version": "2", "state": "ERROR"}) == 1
    host, port = swap.http_address or ("", 0)
    with urllib.request.urlopen(f"http://{host}:{port}/v1/models/m/versions/2") as answer:
        [tf_status] = json.load(answer)["model_version_status"]
    assert tf_status["state"] == "END"  # TF Serving's "hit an error"
    assert tf_status["status"]["error_code"] == "DEADLINE_EXCEEDED"

    # the stuck load returns at last, successfully: its result must be ignored
    unblock_fifo(m / "2" / DEBUG_INFO)
    wait_until(lambda: not abandoned_threads(), what="the abandoned thread to finish")
    coordinator = swap._coordinator
    token = coordinator._models["m"].versions[2].token
    late = LoadJob("m", 2, m / "2", token, frozenset({"serve"}), ())
    flushed = threading.Event()
    # and had it come through the coordinator anyway, the record is no longer LOADING
    coordinator.call(lambda: coordinator._on_loaded(late, Loaded(object(), {})))
    coordinator.call(flushed.set)
    assert flushed.wait(TIMEOUT)
    s.keeps_answering(1)
    assert s.wait_status(2, State.ERROR, "LoadTimeout")
    assert State.AVAILABLE not in events.states(2, "m")

    s.publish(3)  # good files arrive
    s.serves(3)
    s.finish()


def fake_jobs(monkeypatch: pytest.MonkeyPatch) -> dict[int, threading.Event]:
    """run_job stand-in: job number n blocks until gates[n] is set (if there is one)."""
    gates: dict[int, threading.Event] = {}

    def run_job(job: LoadJob) -> Loaded:
        gate = gates.get(job.number)
        if gate is not None:
            gate.wait(TIMEOUT)
        return Loaded(f"model {job.number}", {})

    monkeypatch.setattr("modelswap.load.job.run_job", run_job)
    return gates


def job(number: int, timeout: float) -> LoadJob:
    return LoadJob("m", number, Path(f"/nowhere/{number}"), 1, frozenset({"serve"}), (),
                   load_timeout=timeout)


def test_pool_abandons_and_replaces_stuck_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    gates = fake_jobs(monkeypatch)
    results: list[tuple[int, Any]] = []
    arrived = threading.Condition()

    def done(j: LoadJob, result: Loaded | LoadError) -> None:
        with arrived:
            results.append((j.number, result))
            arrived.notify_all()

    def wait_results(n: int) -> None:
        with arrived:
            assert arrived.wait_for(lambda: len(results) >= n, TIMEOUT), results

    before = set(threading.enumerate())

    def mine(abandoned: bool = False) -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t not in before
                and t.name.startswith("modelswap-load-") and t.name != "modelswap-load-supervisor"
                and ("(abandoned)" in t.name) == abandoned]

    pool = LoadPool(2, done)
    pool.start()
    try:
        gates[1], gates[2] = threading.Event(), threading.Event()
        pool.submit(job(1, 0.2))  # both workers stuck
        pool.submit(job(2, 0.2))
        wait_results(2)
        assert sorted(n for n, _ in results) == [1, 2]
        assert all(isinstance(r, LoadTimeout) for _, r in results)
        assert pool.abandoned == 2 and len(mine(abandoned=True)) == 2
        for n in (3, 4, 5):  # the replacements take new jobs (no timeout: 0 = none)
            pool.submit(job(n, 0))
        wait_results(5)
        assert [type(r) for _, r in results[2:]] == [Loaded] * 3
        gates[1].set()  # the stuck loads return: dropped, and their threads exit
        gates[2].set()
        wait_until(lambda: not mine(abandoned=True), what="abandoned threads to exit")
        pool.submit(job(6, 5.0))
        wait_results(6)
        assert len(results) == 6 and results[-1][0] == 6
        assert len(mine()) == 2
        pool.resize(1)
        wait_until(lambda: len(mine()) == 1, what="the pool to shrink")
    finally:
        for gate in gates.values():
            gate.set()
        pool.stop()
    wait_until(lambda: not [t for t in threading.enumerate() if t not in before
                            and t.name.startswith("modelswap-load-")], what="pool stopped")


def test_load_timeout_zero_means_none(tmp_path: Path) -> None:
    config = parse_config(f"models:\n  - {{name: m, base_path: {tmp_path}}}\n"
                          "loader: {load_timeout: 0}\n")
    assert config.loader.load_timeout == 0
