"""Copies in place that used to leak through the gate: an asset cut short, a shard
allocated at full size and then filled, a saved_model.pb written with pauses, rsync, and a
base path renamed in as a whole. Each: no wrong answer, no ERROR, no on_error, at most 3
events before LOADING."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import TIMEOUT, Events, Exports, wait_reason, wait_until, yaml_for
from faults.helpers import Scene
from modelswap import ModelSwap, State

WORDS = [f"w{i}" for i in range(300)]


def export_vocab(path: Path, words: list[str]) -> Path:
    """A model looking words up in a vocabulary asset (assets/vocab.txt): id or -1."""
    import tensorflow as tf

    vocab = path.parent / f"{path.name}-assets" / "vocab.txt"
    vocab.parent.mkdir(parents=True)
    vocab.write_text("".join(f"{w}\n" for w in words))

    class Vocab(tf.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            init = tf.lookup.TextFileInitializer(
                str(vocab), tf.string, tf.lookup.TextFileIndex.WHOLE_LINE, tf.int64,
                tf.lookup.TextFileIndex.LINE_NUMBER)
            self.table = tf.lookup.StaticHashTable(init, -1)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="words")])  # type: ignore[untyped-decorator]
        def __call__(self, words: Any) -> dict[str, Any]:
            return {"ids": self.table.lookup(words)}

    module = Vocab()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.__call__})
    return path


def lookup(served: Any, word: str) -> int:
    import tensorflow as tf

    return int(served.signatures["serving_default"](words=tf.constant([word]))["ids"][0])


def before_loading(events: Events, version: int) -> list[State]:
    states = events.states(version)
    return states[: states.index(State.LOADING)] if State.LOADING in states else states


def loaded_cleanly(events: Events, version: int) -> None:
    states = events.states(version)
    assert State.ERROR not in states and states.count(State.LOADING) == 1, states
    assert len(before_loading(events, version)) <= 3, states


def test_asset_cut_short_waits_for_the_whole_vocabulary(
        tmp_path: Path, run_swap: Callable[..., tuple[ModelSwap, Events]]) -> None:
    source = export_vocab(tmp_path / "export", WORDS)
    base = tmp_path / "m"
    base.mkdir()
    shutil.copytree(source, tmp_path / "stage1")
    os.replace(tmp_path / "stage1", base / "1")
    swap, events = run_swap(yaml_for(base, top="watch: {settle: 2s}"))
    swap.wait_until_available("m", timeout=TIMEOUT)
    dest = base / "2"
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("vocab.txt"),
                    copy_function=shutil.copyfile)  # in place, fresh mtimes
    text = (source / "assets" / "vocab.txt").read_text().splitlines(keepends=True)
    done, finish = threading.Event(), threading.Event()

    def writer() -> None:  # a slow copy: a third at once, then a line at a time
        with open(dest / "assets" / "vocab.txt", "w") as f:
            third = len(text) // 3
            f.write("".join(text[:third]))
            f.flush()
            for line in text[third:]:
                if not finish.is_set():
                    finish.wait(0.02)
                f.write(line)
                f.flush()
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        wait_reason(swap, 2, "assets/vocab.txt")  # the asset check holds it back
        assert State.LOADING not in events.states(2)
    finally:
        finish.set()
        thread.join(TIMEOUT)
    assert done.is_set()
    swap.wait_until_available("m", version=2, timeout=TIMEOUT)
    with swap.acquire("m") as served:
        assert lookup(served, WORDS[-1]) == len(WORDS) - 1  # never -1: the whole vocabulary
    loaded_cleanly(events, 2)


def test_shard_allocated_then_filled_waits_for_its_content(scene: Callable[..., Scene]) -> None:
    s = scene()
    source, dest = s.exports.get(2.0), s.base / "2"
    s.expect(2, 2.0)
    dest.mkdir()
    (dest / "variables").mkdir()
    for name in ("saved_model.pb", "fingerprint.pb", "variables/variables.index"):
        shutil.copyfile(source / name, dest / name)
    shard = "variables/variables.data-00000-of-00001"
    data = (source / shard).read_bytes()
    subprocess.run(["fallocate", "-l", str(len(data)), str(dest / shard)], check=True)
    fd = os.open(dest / shard, os.O_WRONLY)
    try:
        half = len(data) // 2
        os.pwrite(fd, data[:half], 0)  # right size, half the content
        wait_reason(s.swap, 2, "checksum")
        assert State.LOADING not in s.events.states(2)
        os.pwrite(fd, data[half:], half)
    finally:
        os.close(fd)
    s.serves(2)
    loaded_cleanly(s.events, 2)
    s.finish()


def test_saved_model_written_with_pauses_waits_not_errors(scene: Callable[..., Scene]) -> None:
    s = scene(top="watch: {settle: 300ms}")
    source, dest = s.exports.get(2.0), s.base / "2"
    s.expect(2, 2.0)
    shutil.copytree(source / "variables", dest / "variables")
    pb = (source / "saved_model.pb").read_bytes()
    parts = [pb[: len(pb) // 3], pb[len(pb) // 3 : 2 * len(pb) // 3], pb[2 * len(pb) // 3 :]]
    with open(dest / "saved_model.pb", "wb") as f:
        for part in parts[:-1]:
            f.write(part)
            f.flush()
            # a pause longer than settle: quiet, but it does not parse: still WAITING
            wait_reason(s.swap, 2, "waiting for the writer")
        f.write(parts[-1])
    s.serves(2)
    loaded_cleanly(s.events, 2)
    s.finish()


@pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync is not installed")
def test_rsync_copy_loads_once_whole(scene: Callable[..., Scene]) -> None:
    s = scene()
    s.expect(2, 2.0)
    subprocess.run(["rsync", "-a", f"{s.exports.get(2.0)}/", f"{s.base / '2'}/"], check=True)
    s.serves(2)
    loaded_cleanly(s.events, 2)
    s.finish()


def test_base_path_renamed_in_is_seen_at_once(
        tmp_path: Path, exports: Exports,
        run_swap: Callable[..., tuple[ModelSwap, Events]]) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    swap, events = run_swap(yaml_for(base, top="watch: {rescan_interval: 300ms}"))
    swap.wait_until_available("m", timeout=TIMEOUT)
    staging = tmp_path / "staging" / "m"
    staging.mkdir(parents=True)
    exports.publish(staging, 1, 1.0)
    exports.publish(staging, 2, 2.0)
    os.rename(base, tmp_path / "m.old")
    os.rename(staging, base)  # `mv m m.old && mv staging/m m`
    assert swap.wait_until_available("m", version=2, timeout=TIMEOUT) == 2
    counters = swap._coordinator.counters
    rescans = counters.rescans
    wait_until(lambda: counters.rescans >= rescans + 3, what="rescans after the swap")
    assert counters.rescan_changes == 0  # seen by events: no false "events were lost"
    wait_until(lambda: swap.healthy(), what="healthy")
    loaded_cleanly(events, 2)
