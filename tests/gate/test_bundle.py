"""Tests of modelswap.bundle against checkpoints written by real TensorFlow."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
import tensorflow as tf
from tensorflow.core.protobuf import tensor_bundle_pb2

from modelswap.gate import bundle
from modelswap.gate.bundle import (
    BundleIndexError,
    _masked_crc32c,
    _varint,
    missing_bytes,
    read_index,
)

Copier = Callable[[Path], Path]  # copies a variables/ folder into tmp_path
VARS = {"a": ([64, 32], tf.float32), "b": ([32], tf.float64), "c": ([100], tf.int32)}


class Tiny(tf.Module):
    def __init__(self) -> None:
        super().__init__()
        for name, (shape, dtype) in VARS.items():
            setattr(self, name, tf.Variable(tf.ones(shape, dtype=dtype), name=name))

    @tf.function(input_signature=[tf.TensorSpec([None, 64])])
    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        return tf.matmul(x, self.a) + tf.cast(self.b, tf.float32)


def _export(path: Path, max_shard_size: int | None = None) -> Path:
    options = None
    if max_shard_size is not None:
        policy = tf.train.experimental.MaxShardSizePolicy(max_shard_size=max_shard_size)
        options = tf.saved_model.SaveOptions(experimental_sharding_callback=policy)
    tf.saved_model.save(Tiny(), str(path), options=options)
    return path / "variables"


def _shards(variables: Path) -> list[Path]:
    return sorted(variables.glob("variables.data-*"))


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-shard export."""
    return _export(tmp_path_factory.mktemp("single") / "1")


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A multi-shard export, no variable sliced: the largest one (a, 8 KiB) fills a shard."""
    return _export(tmp_path_factory.mktemp("sharded") / "1", max_shard_size=64 * 32 * 4)


@pytest.fixture(scope="module")
def sliced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A multi-shard export whose variables are partitioned into slices across shards."""
    return _export(tmp_path_factory.mktemp("sliced") / "1", max_shard_size=1000)


@pytest.fixture
def copy(tmp_path: Path) -> Copier:
    def _copy(variables: Path) -> Path:
        return Path(shutil.copytree(variables, tmp_path / "variables"))

    return _copy


def test_complete_single_shard(single: Path) -> None:
    assert [p.name for p in _shards(single)] == ["variables.data-00000-of-00001"]
    assert missing_bytes(single) is None
    header, entries = read_index(single / "variables.index")
    assert header.num_shards == 1
    assert header.endianness == tensor_bundle_pb2.BundleHeaderProto.LITTLE
    assert header.version.producer == 1
    for name, (shape, dtype) in VARS.items():
        entry = entries[f"{name}/.ATTRIBUTES/VARIABLE_VALUE"]
        assert entry.dtype == dtype.as_datatype_enum
        assert [d.size for d in entry.shape.dim] == shape
        assert entry.shard_id == 0 and not entry.slices
        assert entry.size == tf.TensorShape(shape).num_elements() * dtype.size
    assert entries["_CHECKPOINTABLE_OBJECT_GRAPH"].dtype == tf.string.as_datatype_enum
    assert len(entries) == len(VARS) + 1


def test_complete_multi_shard(sharded: Path) -> None:
    header, entries = read_index(sharded / "variables.index")
    assert header.num_shards > 1
    assert len(_shards(sharded)) == header.num_shards
    assert len({e.shard_id for e in entries.values()}) > 1
    assert not any(e.slices for e in entries.values())
    assert missing_bytes(sharded) is None


def test_complete_sliced(sliced: Path) -> None:
    header, entries = read_index(sliced / "variables.index")
    assert len(_shards(sliced)) == header.num_shards > 2
    full = entries["a/.ATTRIBUTES/VARIABLE_VALUE"]
    assert full.slices and [d.size for d in full.shape.dim] == [64, 32]
    assert sum(1 for k in entries if k.startswith("\x00a/")) == len(full.slices)
    assert missing_bytes(sliced) is None


@pytest.mark.parametrize("keep", [-1, 0])
def test_truncated_shard(single: Path, copy: Copier, keep: int) -> None:
    variables = copy(single)
    shard = _shards(variables)[0]
    size = shard.stat().st_size
    os.truncate(shard, size + keep if keep < 0 else keep)
    expected = f"variables/{shard.name}: {size + keep if keep < 0 else 0} of {size} bytes"
    assert missing_bytes(variables) == expected


def test_truncated_shard_of_slices(sliced: Path, copy: Copier) -> None:
    variables = copy(sliced)
    _, entries = read_index(variables / "variables.index")
    slice_shards = {e.shard_id for k, e in entries.items() if k.startswith("\x00")}
    shard = _shards(variables)[min(slice_shards)]
    os.truncate(shard, shard.stat().st_size - 1)
    reason = missing_bytes(variables)
    assert reason is not None and reason.startswith(f"variables/{shard.name}: ")


def test_missing_shard(sharded: Path, copy: Copier) -> None:
    variables = copy(sharded)
    shard = _shards(variables)[-1]
    shard.unlink()
    assert missing_bytes(variables) == f"variables/{shard.name} missing"


def test_shard_is_a_directory(single: Path, copy: Copier) -> None:
    variables = copy(single)
    shard = _shards(variables)[0]
    shard.unlink()
    shard.mkdir()
    assert missing_bytes(variables) == f"variables/{shard.name} is not a file"


def test_index_beside_too_few_shards(single: Path, sharded: Path, copy: Copier) -> None:
    variables = copy(single)
    shutil.copy(sharded / "variables.index", variables / "variables.index")
    n = len(_shards(sharded))
    assert missing_bytes(variables) == f"variables/variables.data-00000-of-{n:05d} missing"


def test_missing_index(single: Path, copy: Copier, tmp_path: Path) -> None:
    variables = copy(single)
    (variables / "variables.index").unlink()
    assert missing_bytes(variables) == "variables/variables.index missing"
    assert missing_bytes(tmp_path / "nowhere") == "nowhere/variables.index missing"
    with pytest.raises(FileNotFoundError):
        read_index(variables / "variables.index")


def _corrupt(data: bytes) -> dict[str, bytes]:
    flipped = bytearray(data)
    flipped[20] ^= 0x01  # inside the first data block
    return {
        "empty": b"",
        "truncated by one byte": data[:-1],
        "truncated to half": data[: len(data) // 2],
        "footer only": data[-48:],
        "random bytes": bytes(range(256)) * 3 + os.urandom(100),
        "one bit flipped": bytes(flipped),
        "all zeros": bytes(len(data)),
    }


@pytest.mark.parametrize(
    "case",
    list(_corrupt(b"x" * 100)),  # names only; the content is built in the test
)
def test_bad_index(single: Path, copy: Copier, case: str) -> None:
    variables = copy(single)
    index = variables / "variables.index"
    index.write_bytes(_corrupt(index.read_bytes())[case])
    reason = missing_bytes(variables)
    assert reason is not None and reason.startswith("variables/variables.index does not parse: ")
    with pytest.raises(BundleIndexError):
        read_index(index)


def test_bad_magic_and_checksum_reasons(single: Path, copy: Copier) -> None:
    variables = copy(single)
    index = variables / "variables.index"
    data = index.read_bytes()
    index.write_bytes(data[:-1] + b"\x00")
    assert missing_bytes(variables) == "variables/variables.index does not parse: bad magic"
    flipped = bytearray(data)
    flipped[20] ^= 0x01
    index.write_bytes(bytes(flipped))
    assert "checksum mismatch" in (missing_bytes(variables) or "")


def test_snappy_block_is_a_clear_error(single: Path, copy: Copier) -> None:
    variables = copy(single)
    index = variables / "variables.index"
    data = bytearray(index.read_bytes())
    footer = bytes(data[-48:])  # metaindex handle, then index handle: four varints
    _, pos = _varint(footer, 0, 48)
    _, pos = _varint(footer, pos, 48)
    offset, pos = _varint(footer, pos, 48)
    size, _ = _varint(footer, pos, 48)
    data[offset + size] = 1  # the index block's compression type: snappy, re-checksummed
    crc = _masked_crc32c(bytes(data[offset : offset + size + 1]))
    struct.pack_into("<I", data, offset + size + 1, crc)
    index.write_bytes(bytes(data))
    reason = missing_bytes(variables)
    assert reason is not None and "snappy" in reason


def test_masked_crc32c() -> None:
    # crc32c("123456789") is 0xE3069283; masked as LevelDB/TensorFlow store it.
    crc = 0xE3069283
    assert _masked_crc32c(b"123456789") == (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def test_tf1_builder(tmp_path: Path) -> None:
    export = tmp_path / "tf1"
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as sess:
        w = tf.compat.v1.get_variable("w", shape=[3, 2], use_resource=True)
        x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
        tf.identity(tf.matmul(x, w), name="y")
        sess.run(tf.compat.v1.global_variables_initializer())
        builder = tf.compat.v1.saved_model.Builder(str(export))
        builder.add_meta_graph_and_variables(sess, ["serve"])
        builder.save()
    variables = export / "variables"
    assert missing_bytes(variables) is None
    header, entries = read_index(variables / "variables.index")
    assert header.num_shards == 1
    assert [d.size for d in entries["w"].shape.dim] == [3, 2]
    assert entries["w"].dtype == tf.float32.as_datatype_enum
    os.truncate(_shards(variables)[0], 0)
    assert missing_bytes(variables) == "variables/variables.data-00000-of-00001: 0 of 24 bytes"


class _AlwaysEqual(int):
    def __ne__(self, other: object) -> bool:
        return False


def test_mutated_index_never_raises_anything_else(
    single: Path, copy: Copier, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With checksums neutralized, corrupt bytes reach the block and proto parsers.
    monkeypatch.setattr(bundle, "_masked_crc32c", lambda data: _AlwaysEqual())
    variables = copy(single)
    index = variables / "variables.index"
    data = index.read_bytes()
    rng = random.Random(1234)
    for _ in range(400):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            mutated[rng.randrange(len(data) - 8)] = rng.randrange(256)  # keep the magic
        index.write_bytes(bytes(mutated))
        with contextlib.suppress(BundleIndexError):
            read_index(index)
        reason = missing_bytes(variables)
        assert reason is None or isinstance(reason, str)
