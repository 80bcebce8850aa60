"""End-to-end: real exports, real watchdog, real tf.saved_model.load."""

from __future__ import annotations

import gc
import os
import shutil
import weakref
from pathlib import Path
from typing import Any

import pytest

from conftest import (
    Consumer,
    Events,
    Exports,
    answer,
    export_tf1,
    predict,
    wait_reason,
    wait_until,
    yaml_for,
)
from modelswap import ModelNotFound, State, VersionNotAvailable


def test_first_version_available(tmp_path: Path, exports: Exports, run_swap: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 2.0)
    swap, _ = run_swap(yaml_for(base))
    assert swap.wait_until_available("m", timeout=60) == 1
    with swap.acquire("m") as served:
        assert (served.version, served.path) == (1, base / "1")
        assert predict(served) == answer(2.0)
        assert "serving_default" in served.signatures
    [status] = swap.status()["m"]
    assert (status.version, status.state) == (1, State.AVAILABLE)


def test_atomic_swap_under_load(tmp_path: Path, exports: Exports, run_swap: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 2.0)
    swap, events = run_swap(yaml_for(base))
    swap.wait_until_available("m", timeout=60)
    consumer = Consumer(swap, {1: answer(2.0), 2: answer(3.0)})
    consumer.start()
    wait_until(lambda: consumer.calls.get(1, 0) > 5, what="v1 calls")
    exports.publish(base, 2, 3.0)
    events.wait_state(1, State.END)
    wait_until(lambda: consumer.calls.get(2, 0) > 5, what="v2 calls")
    consumer.stop()
    assert consumer.failures == []
    assert events.states(2) == [State.LOADING, State.AVAILABLE]
    assert events.states(1)[-3:] == [State.AVAILABLE, State.UNLOADING, State.END]


def test_non_atomic_copy_loads_only_when_complete(tmp_path: Path, exports: Exports,
                                                  run_swap: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 2.0)
    swap, events = run_swap(yaml_for(base))
    swap.wait_until_available("m", timeout=60)
    source = exports.get(3.0)
    (base / "2").mkdir()
    shutil.copyfile(source / "saved_model.pb", base / "2" / "saved_model.pb")
    # past the settle time the gate still waits: the variables prove it incomplete
    wait_reason(swap, 2, "variables")
    (base / "2" / "variables").mkdir()
    shutil.copyfile(source / "variables" / "variables.index",
                    base / "2" / "variables" / "variables.index")
    data = (source / "variables" / "variables.data-00000-of-00001").read_bytes()
    with open(base / "2" / "variables" / "variables.data-00000-of-00001", "wb") as f:
        f.write(data[: len(data) // 2])
    wait_reason(swap, 2, "bytes")
    assert events.states(2) == [State.WAITING]  # progress is status, not events
    with open(base / "2" / "variables" / "variables.data-00000-of-00001", "ab") as f:
        f.write(data[len(data) // 2:])
    swap.wait_until_available("m", version=2, timeout=60)
    with swap.acquire("m") as served:
        assert predict(served) == answer(3.0)


def test_wrong_tags_error_keeps_old(tmp_path: Path, exports: Exports, run_swap: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 2.0)
    swap, events = run_swap(yaml_for(base))
    swap.wait_until_available("m", timeout=60)
    staging = tmp_path / "stage"
    export_tf1(staging, {("train",): 0.0})
    os.replace(staging, base / "2")
    event = events.wait_state(2, State.ERROR)
    assert event.error_type == "TagMismatch"
    assert "['train']" in (event.error or "") and "['serve']" in (event.error or "")
    assert State.LOADING not in events.states(2)
    with swap.acquire("m") as served:
        assert served.version == 1 and predict(served) == answer(2.0)


@pytest.mark.parametrize("content", [b"", b"\x08\x96\x01garbage\xff\xfe" * 50])
def test_corrupt_saved_model_then_fixed(tmp_path: Path, exports: Exports, run_swap: Any,
                                        content: bytes) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 2.0)
    swap, events = run_swap(yaml_for(base))
    swap.wait_until_available("m", timeout=60)
    staging = tmp_path / "stage"
    shutil.copytree(exports.get(3.0), staging)
    (staging / "saved_model.pb").write_bytes(content)
    os.replace(staging, base / "2")
    event = events.wait_state(2, State.ERROR)
    assert event.error_type == "LoadError" and "saved_model.pb" in (event.error or "")
    with swap.acquire("m") as served:
        assert served.version == 1
    fixed = tmp_path / "fixed.pb"
    shutil.copyfile(exports.get(3.0) / "saved_model.pb", fixed)
    os.replace(fixed, base / "2" / "saved_model.pb")
    swap.wait_until_available("m", version=2, timeout=60)
    with swap.acquire("m") as served:
        assert predict(served) == answer(3.0)


def test_latest_two(tmp_path: Path, exports: Exports, run_swap: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    for v in (1, 2, 3):
        exports.publish(base, v, float(v))
    swap, events = run_swap(yaml_for(base, "version_policy: {latest: 2}"))
    swap.wait_until_available("m", version=3, timeout=60)
    swap.wait_until_available("m", version=2, timeout=60)
    with swap.acquire("m", version=2) as served:
        assert predict(served) == answer(2.0)
    with pytest.raises(VersionNotAvailable):
        swap.acquire("m", version=1)
    assert events.states(1) == []
    exports.publish(base, 4, 4.0)
    events.wait_state(2, State.END)
    assert sorted(s.version for s in swap.status()["m"] if s.state is State.AVAILABLE) == [3, 4]


def test_specific_versions(tmp_path: Path, exports: Exports, run_swap: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    for v in (1, 2, 3):
        exports.publish(base, v, float(v))
    swap, events = run_swap(yaml_for(base, "version_policy: {specific: [1, 3]}"))
    swap.wait_until_available("m", version=1, timeout=60)
    swap.wait_until_available("m", version=3, timeout=60)
    assert events.states(2) == []
    with swap.acquire("m") as served:
        assert served.version == 3


def test_labels(tmp_path: Path, exports: Exports, run_swap: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    for v in (1, 2):
        exports.publish(base, v, float(v))
    swap, _ = run_swap(yaml_for(base, "labels: {stable: 1, canary: 7}"))
    swap.wait_until_available("m", version=1, timeout=60)
    swap.wait_until_available("m", version=2, timeout=60)
    with swap.acquire("m", label="stable") as served:
        assert served.version == 1 and predict(served) == answer(1.0)
    with swap.acquire("m") as served:
        assert served.version == 2
    with pytest.raises(VersionNotAvailable, match="canary"):
        swap.acquire("m", label="canary")
    with pytest.raises(VersionNotAvailable):
        swap.acquire("m", label="nope")
    assert [s.labels for s in swap.status()["m"]] == [(), ("stable",)]


def test_delete_newest_rolls_back_without_gap(tmp_path: Path, exports: Exports,
                                              run_swap: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    exports.publish(base, 2, 2.0)
    swap, events = run_swap(yaml_for(base))
    swap.wait_until_available("m", version=2, timeout=60)
    consumer = Consumer(swap, {1: answer(1.0), 2: answer(2.0)})
    consumer.start()
    wait_until(lambda: consumer.calls.get(2, 0) > 5, what="v2 calls")
    shutil.rmtree(base / "2")
    events.wait_state(2, State.END)
    wait_until(lambda: consumer.calls.get(1, 0) > 5, what="v1 calls")
    consumer.stop()
    assert consumer.failures == []
    ends = [e for e in events.items if (e.version, e.state) in ((1, State.AVAILABLE),
                                                                (2, State.UNLOADING))]
    assert [(e.version, e.state) for e in ends] == [(1, State.AVAILABLE), (2, State.UNLOADING)]


def test_burst_loads_only_newest(tmp_path: Path, exports: Exports, run_swap: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    swap, events = run_swap(yaml_for(base))
    swap.wait_until_available("m", timeout=60)
    staging = tmp_path / "staging"
    staging.mkdir()
    for v in range(2, 12):
        shutil.copytree(exports.get(float(v % 3)), staging / str(v))
    for v in range(2, 12):
        os.replace(staging / str(v), base / str(v))
    swap.wait_until_available("m", version=11, timeout=60)
    events.wait_state(1, State.END)
    published = {e.version for e in events.items if e.state is State.AVAILABLE}
    assert published == {1, 11}
    loads = [e.version for e in events.items if e.state is State.LOADING]
    assert len(loads) <= 3, loads  # v1, v11 and at most one intermediate already started


def test_non_numeric_folders_ignored(tmp_path: Path, exports: Exports, run_swap: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    for name in ("tmp", "v2", "1.5", "-3", "0", "00", "٣"):
        shutil.copytree(exports.get(9.0), base / name)
    (base / "7").write_text("a file, not a folder")
    exports.publish(base, "0004", 4.0)
    swap, _ = run_swap(yaml_for(base))
    assert swap.wait_until_available("m", timeout=60) == 4
    assert [s.version for s in swap.status()["m"]] == [4]


def test_duplicate_version_folders(tmp_path: Path, exports: Exports, run_swap: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, "001", 1.0)
    exports.publish(base, "0001", 2.0)
    swap, _ = run_swap(yaml_for(base))
    swap.wait_until_available("m", timeout=60)
    with swap.acquire("m") as served:
        assert served.path.name == "0001"


def test_base_path_missing_then_created(tmp_path: Path, exports: Exports, run_swap: Any) -> None:
    base = tmp_path / "not" / "yet" / "m"
    swap, _ = run_swap(yaml_for(base))
    with pytest.raises(VersionNotAvailable):
        swap.acquire("m")
    base.mkdir(parents=True)
    exports.publish(base, 1, 2.0)
    swap.wait_until_available("m", timeout=60)


def test_base_path_deleted_and_recreated(tmp_path: Path, exports: Exports, run_swap: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    swap, events = run_swap(yaml_for(base))
    swap.wait_until_available("m", timeout=60)
    shutil.rmtree(base)
    wait_until(lambda: not base.exists())
    base.mkdir()  # re-created: a new inode to watch
    exports.publish(base, 2, 2.0)
    swap.wait_until_available("m", version=2, timeout=60)
    with swap.acquire("m") as served:
        assert predict(served) == answer(2.0)
    assert State.ERROR not in events.states(1)


def test_empty_base_keeps_serving(tmp_path: Path, exports: Exports, run_swap: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    swap, events = run_swap(yaml_for(base))
    swap.wait_until_available("m", timeout=60)
    shutil.rmtree(base / "1")
    # a broken v2 after the deletion: its ERROR proves the listing without v1 was seen
    staging = tmp_path / "stage"
    export_tf1(staging, {("train",): 0.0})
    os.replace(staging, base / "2")
    events.wait_state(2, State.ERROR)
    with swap.acquire("m") as served:
        assert served.version == 1 and predict(served) == answer(1.0)
    assert events.states(1) == [State.LOADING, State.AVAILABLE]


def test_resource_policy_retires_first(tmp_path: Path, exports: Exports, run_swap: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    swap, events = run_swap(yaml_for(base, top="loader: {swap_policy: resource}"))
    swap.wait_until_available("m", timeout=60)
    exports.publish(base, 2, 2.0)
    swap.wait_until_available("m", version=2, timeout=60)
    order = [(e.version, e.state) for e in events.items
             if (e.version, e.state) in ((1, State.UNLOADING), (2, State.LOADING))]
    assert order == [(1, State.UNLOADING), (2, State.LOADING)]


def test_retired_version_usable_while_held_then_freed(tmp_path: Path, exports: Exports,
                                                      run_swap: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    swap, events = run_swap(yaml_for(base))
    swap.wait_until_available("m", timeout=60)
    held = swap.acquire("m")
    ref = weakref.ref(held.model)
    exports.publish(base, 2, 2.0)
    events.wait_state(1, State.UNLOADING)
    assert predict(held) == answer(1.0)  # retired, still usable while held
    with swap.acquire("m") as served:
        assert served.version == 2
    assert State.END not in events.states(1)
    held.release()
    events.wait_state(1, State.END)
    del held

    def freed() -> bool:
        gc.collect()
        return ref() is None

    wait_until(freed, what="retired model freed")


def test_poll_mode(tmp_path: Path, exports: Exports, run_swap: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    swap, _ = run_swap(yaml_for(base, top="watch: {mode: poll, poll_interval: 100ms}"))
    swap.wait_until_available("m", timeout=60)
    exports.publish(base, 2, 2.0, how="copy")
    swap.wait_until_available("m", version=2, timeout=60)
    assert swap._source.mode_of("m") == "poll"


def test_tf1_builder_two_metagraphs_selected_by_tags(tmp_path: Path, run_swap: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    export_tf1(base / "1", {("serve",): 0.0, ("serve", "gpu"): 10.0})
    swap, _ = run_swap(yaml_for(base, "tags: [serve, gpu]", name="a")
                       + yaml_for(base, name="b").removeprefix("models:\n"))
    swap.wait_until_available("a", timeout=60)
    swap.wait_until_available("b", timeout=60)
    with swap.acquire("a") as served:
        assert predict(served) == 13.0
    with swap.acquire("b") as served:
        assert predict(served) == 3.0


def test_required_signature_missing(tmp_path: Path, exports: Exports, run_swap: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    swap, events = run_swap(yaml_for(base, "signatures: [serving_default, classify]"))
    event = events.wait_state(1, State.ERROR)
    assert event.error_type == "SignatureMismatch" and "classify" in (event.error or "")
    with pytest.raises(VersionNotAvailable):
        swap.acquire("m")


def test_unknown_model_and_timeout(tmp_path: Path, run_swap: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    swap, _ = run_swap(yaml_for(base))
    with pytest.raises(ModelNotFound, match="known: \\['m'\\]"):
        swap.acquire("nope")
    with pytest.raises(ModelNotFound):
        swap.wait_until_available("nope", timeout=1)
    with pytest.raises(TimeoutError, match="m not available"):
        swap.wait_until_available("m", timeout=0.2)


def test_events_reach_subscribers_with_durations(tmp_path: Path, exports: Exports,
                                                 run_swap: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    swap, events = run_swap(yaml_for(base))
    extra = Events()
    unsubscribe = swap.subscribe(extra)
    event = events.wait_state(1, State.AVAILABLE)
    assert dict(event.durations).keys() >= {"load", "validate"}
    assert event.previous is State.LOADING and event.path == base / "1"
    unsubscribe()


def test_atomic_publishes_need_no_settle_wait(tmp_path: Path, exports: Exports,
                                              run_swap: Any) -> None:
    """With settle at an hour, only content and renames can prove completeness."""
    from modelswap.cli.demo import export_linear

    base = tmp_path / "m"
    base.mkdir()
    swap, events = run_swap(yaml_for(base, top="watch: {settle: 1h}"))
    staging = tmp_path / "staging"
    staging.mkdir()
    export_linear(base / "1", 0.5, 1.0, staging=staging)  # fresh save, folder renamed in
    swap.wait_until_available("m", version=1, timeout=60)
    export_linear(base / "2", 0.5, 2.0)  # tf.saved_model.save straight into the base path
    swap.wait_until_available("m", version=2, timeout=60)
    exports.publish(base, 3, 3.0, how="copy")  # in place, fresh mtimes: must settle
    wait_reason(swap, 3, "settling")
    exports.publish(base, 4, 4.0)  # an older copy renamed in
    swap.wait_until_available("m", version=4, timeout=60)
    assert State.LOADING not in events.states(3)


def test_rescan_finds_what_no_event_reported(tmp_path: Path, exports: Exports,
                                             run_swap: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    swap, _ = run_swap(yaml_for(base, top="watch: {mode: poll, poll_interval: 1h, "
                                     "rescan_interval: 100ms}"))
    wait_until(lambda: swap._coordinator.scanned, what="the first scan")
    exports.publish(base, 1, 1.0)
    swap.wait_until_available("m", timeout=60)
    assert swap._coordinator.counters.rescan_changes >= 1
