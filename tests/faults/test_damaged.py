"""Damaged files: the served version keeps answering, the bad version says what is wrong,
and good files make it load."""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from google.protobuf import text_format

from faults.helpers import Scene, export_sharded, fifo_valve, stage
from modelswap import State

DATA = "variables.data-00000-of-00001"


def publish_damaged(s: Scene, version: int, damage: Callable[[Path], object]) -> Path:
    """Stage a copy of the good export for `version`, damage it, rename it in."""
    staging = stage(s.exports, float(version), s.base.parent / f"damaged-{version}")
    damage(staging)
    s.expect(version, float(version))
    os.replace(staging, s.base / str(version))
    return s.base / str(version)


def replace_file(s: Scene, version: int, relative: str) -> None:
    """Good files arrive: put the good export's `relative` file in place, atomically."""
    target = s.base / str(version) / relative
    target.parent.mkdir(exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.copyfile(s.exports.get(float(version)) / relative, tmp)
    os.replace(tmp, target)


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("damage, error_type, says", [
    ("empty", "LoadError", "holds no MetaGraph"),
    ("truncated", "LoadError", "saved_model.pb"),
    ("random", "LoadError", "does not parse"),
])
def test_damaged_saved_model(scene: Callable[..., Scene], damage: str, error_type: str,
                             says: str) -> None:
    s = scene()

    def spoil(folder: Path) -> None:
        pb = folder / "saved_model.pb"
        if damage == "empty":
            pb.write_bytes(b"")
        elif damage == "truncated":
            truncate(pb, 0.3)
        else:
            pb.write_bytes(random.Random(7).randbytes(4096))

    publish_damaged(s, 2, spoil)
    status = s.wait_status(2, State.ERROR)
    assert status.error_type == error_type and says in (status.error or ""), status
    assert State.LOADING not in s.events.states(2)  # refused by the gate, never loaded
    s.keeps_answering(1)
    replace_file(s, 2, "saved_model.pb")
    s.serves(2)
    s.finish()


@pytest.mark.parametrize("damage, says", [
    ("truncated shard", f"variables/{DATA}: "),
    ("missing shard", f"variables/{DATA} missing"),
    ("missing index", "variables/variables.index missing"),
    ("truncated index", "variables/variables.index does not parse"),
])
def test_damaged_variables_wait_for_good_files(scene: Callable[..., Scene], damage: str,
                                               says: str) -> None:
    s = scene()

    def spoil(folder: Path) -> None:
        variables = folder / "variables"
        if damage == "truncated shard":
            truncate(variables / DATA)
        elif damage == "missing shard":
            (variables / DATA).unlink()
        elif damage == "missing index":
            (variables / "variables.index").unlink()
        else:
            truncate(variables / "variables.index", 0.8)

    publish_damaged(s, 2, spoil)
    status = s.wait_status(2, State.WAITING, "IncompleteModel", says)
    assert State.LOADING not in s.events.states(2), status
    s.keeps_answering(1)
    replace_file(s, 2, "variables/" + (DATA if "shard" in damage else "variables.index"))
    s.serves(2)
    s.finish()


def test_index_naming_shards_that_are_not_there(scene: Callable[..., Scene],
                                                tmp_path: Path) -> None:
    """variables.index from another (4-shard) export: it names shards the folder lacks."""
    s = scene()
    sharded = export_sharded(tmp_path / "sharded", 2.0)
    publish_damaged(s, 2, lambda folder: shutil.copyfile(
        sharded / "variables" / "variables.index", folder / "variables" / "variables.index"))
    s.wait_status(2, State.WAITING, "IncompleteModel", "variables.data-00000-of-00004 missing")
    s.keeps_answering(1)
    replace_file(s, 2, "variables/variables.index")
    s.serves(2)
    s.finish()


def test_pbtxt_model_serves_and_a_broken_one_is_refused(scene: Callable[..., Scene]) -> None:
    from tensorflow.core.protobuf import saved_model_pb2

    s = scene()

    def to_text(folder: Path) -> None:
        proto = saved_model_pb2.SavedModel()
        proto.ParseFromString((folder / "saved_model.pb").read_bytes())
        (folder / "saved_model.pbtxt").write_text(text_format.MessageToString(proto))
        (folder / "saved_model.pb").unlink()

    publish_damaged(s, 2, to_text)
    s.serves(2)  # a text SavedModel is a good model

    def broken_text(folder: Path) -> None:
        to_text(folder)
        pbtxt = folder / "saved_model.pbtxt"
        pbtxt.write_text(pbtxt.read_text()[:5000] + "\n}}} not a proto")

    publish_damaged(s, 3, broken_text)
    status = s.wait_status(3, State.ERROR, "LoadError", "saved_model.pbtxt does not parse")
    assert State.LOADING not in s.events.states(3), status
    s.keeps_answering(2)
    publish_damaged(s, 4, to_text)  # the next good version
    s.serves(4)
    s.finish()


def test_fifo_saved_model_is_refused_without_hanging(scene: Callable[..., Scene],
                                                     fifo: Callable[[Path], Path]) -> None:
    s = scene()

    def fifo_pb(folder: Path) -> None:
        (folder / "saved_model.pb").unlink()
        fifo(folder / "saved_model.pb")

    with fifo_valve(s.base / "2" / "saved_model.pb"):
        publish_damaged(s, 2, fifo_pb)
        s.wait_status(2, State.ERROR, "LoadError", "saved_model.pb is not a regular file")
    s.keeps_answering(1)
    replace_file(s, 2, "saved_model.pb")
    s.serves(2)
    s.finish()


def test_fifo_fingerprint_is_refused_without_freezing_the_process(
        scene: Callable[..., Scene], fifo: Callable[[Path], Path]) -> None:
    """TensorFlow reads fingerprint.pb holding the GIL: a FIFO there would freeze every
    thread of the process, consumers included; the gate refuses it."""
    s = scene()

    def fifo_fingerprint(folder: Path) -> None:
        (folder / "fingerprint.pb").unlink()
        fifo(folder / "fingerprint.pb")

    with fifo_valve(s.base / "2" / "fingerprint.pb"):
        publish_damaged(s, 2, fifo_fingerprint)
        s.wait_status(2, State.ERROR, "LoadError", "fingerprint.pb is not a regular file")
        s.keeps_answering(1)
    assert State.LOADING not in s.events.states(2)
    replace_file(s, 2, "fingerprint.pb")
    s.serves(2)
    s.finish()


def test_fifo_variables_index_does_not_block_the_coordinator(
        scene: Callable[..., Scene], fifo: Callable[[Path], Path]) -> None:
    s = scene()

    def fifo_index(folder: Path) -> None:
        (folder / "variables" / "variables.index").unlink()
        fifo(folder / "variables" / "variables.index")

    publish_damaged(s, 2, fifo_index)
    s.wait_status(2, State.ERROR, "LoadError", "variables/variables.index is not a regular file")
    s.keeps_answering(1)
    s.publish(3)  # the coordinator is not stuck: it still takes new versions
    s.serves(3)
    replace_file(s, 2, "variables/variables.index")  # an older version: not wanted now
    s.finish()
