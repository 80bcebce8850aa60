"""Every way a version folder gets written: the gate lets it load only when it is whole,
the served version keeps answering meanwhile, and the new version then answers right."""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path

from faults.helpers import Scene, export_sharded
from modelswap import State

FILES = ("saved_model.pb", "fingerprint.pb")


def files_of(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def copy_one(source: Path, dest: Path, relative: str) -> None:
    target = dest / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source / relative, target)


def only_loaded_when_whole(s: Scene, version: int) -> None:
    """The version went WAITING (never LOADING) before it was whole, then loaded once."""
    states = s.events.states(version)
    assert states[-2:] == [State.LOADING, State.AVAILABLE], states
    assert states.count(State.LOADING) == 1 and State.ERROR not in states, states


def test_cp_r_order_saved_model_first(scene: Callable[..., Scene]) -> None:
    """`cp -r`: saved_model.pb lands first (written in place), then the variables."""
    s = scene()
    source, dest = s.exports.get(2.0), s.base / "2"
    s.expect(2, 2.0)
    dest.mkdir()
    for name in FILES:
        copy_one(source, dest, name)
    s.wait_status(2, State.WAITING, "IncompleteModel", "variables/variables.index missing")
    (dest / "variables").mkdir()
    copy_one(source, dest, "variables/variables.index")
    s.wait_status(2, State.WAITING, "IncompleteModel", "variables.data-00000-of-00001 missing")
    s.keeps_answering(1)
    copy_one(source, dest, "variables/variables.data-00000-of-00001")
    s.serves(2)
    only_loaded_when_whole(s, 2)
    s.finish()


def test_object_store_sync_order_shards_shuffled_index_last(scene: Callable[..., Scene],
                                                           tmp_path: Path) -> None:
    """gsutil / `aws s3 sync`: files in any order (here: shuffled data shards, one of them
    half-written for a while, the index last)."""
    s = scene()
    source, dest = export_sharded(tmp_path / "sharded", 2.0), s.base / "2"
    s.expect(2, 2.0)
    shards = [f for f in files_of(source) if "variables.data" in f]
    assert len(shards) == 4
    order = [*FILES, *shards]
    random.Random(3).shuffle(order)
    dest.mkdir()
    half = order[len(order) // 2]
    for relative in order:
        if relative == half and "data" in relative:
            data = (source / relative).read_bytes()
            (dest / relative).parent.mkdir(exist_ok=True)
            (dest / relative).write_bytes(data[: len(data) // 2])
        else:
            copy_one(source, dest, relative)
    s.wait_status(2, State.WAITING, "IncompleteModel", "variables.index missing")
    if "data" in half:
        copy_one(source, dest, half)
    copy_one(source, dest, "variables/variables.index")
    s.serves(2)
    only_loaded_when_whole(s, 2)
    # and the other way round: the index first, shards after, one of them half-written
    source3, dest3 = export_sharded(tmp_path / "sharded3", 3.0), s.base / "3"
    s.expect(3, 3.0)
    dest3.mkdir()
    copy_one(source3, dest3, "variables/variables.index")
    for name in FILES:
        copy_one(source3, dest3, name)
    shards = [f for f in files_of(source3) if "variables.data" in f]
    random.Random(4).shuffle(shards)
    for relative in shards[:-1]:
        copy_one(source3, dest3, relative)
    data = (source3 / shards[-1]).read_bytes()
    (dest3 / shards[-1]).write_bytes(data[:100])
    s.wait_status(3, State.WAITING, "IncompleteModel", f"{Path(shards[-1]).name}: 100 of ")
    s.keeps_answering(2)
    (dest3 / shards[-1]).write_bytes(data)
    s.serves(3)
    only_loaded_when_whole(s, 3)
    s.finish()


def test_rsync_temp_files_renamed_in(scene: Callable[..., Scene]) -> None:
    """rsync: each file is written to `.name.XXXXXX` beside its target, then renamed;
    files arrive in name order (saved_model.pb before variables/)."""
    s = scene()
    source, dest = s.exports.get(2.0), s.base / "2"
    s.expect(2, 2.0)
    dest.mkdir()
    for n, relative in enumerate(files_of(source)):
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{n:06d}")
        shutil.copyfile(source / relative, tmp)
        if relative == "variables/variables.index":
            s.wait_status(2, State.WAITING, "IncompleteModel", "variables.index missing")
        os.replace(tmp, target)
    s.serves(2)
    only_loaded_when_whole(s, 2)
    assert not [f for f in files_of(dest) if "/." in f or f.startswith(".")]
    s.finish()


def test_folder_renamed_in_from_outside_the_watched_tree(scene: Callable[..., Scene]) -> None:
    s = scene()
    s.publish(2, how="atomic")  # staged beside the base path, renamed in
    s.serves(2)
    # an atomic publish needs no settle wait: straight to LOADING
    assert s.events.states(2)[:1] == [State.LOADING], s.events.states(2)
    s.finish()


def test_folder_staged_inside_under_a_non_numeric_name(scene: Callable[..., Scene]) -> None:
    s = scene()
    staging = s.base / ".incoming-2"
    s.expect(2, 2.0)
    staging.mkdir()
    source = s.exports.get(2.0)
    for relative in files_of(source):  # slowly, in place, like cp -r
        copy_one(source, staging, relative)
    s.keeps_answering(1)
    assert [st.version for st in s.swap.status()["m"]] == [1]  # not a version: ignored
    os.replace(staging, s.base / "2")
    s.serves(2)
    assert s.events.states(2)[:1] == [State.LOADING], s.events.states(2)
    s.finish()
