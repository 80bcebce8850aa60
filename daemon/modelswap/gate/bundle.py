"""Prove from content, without loading the model, that a tensor bundle checkpoint is whole.

`variables/variables.index` is a TensorFlow table (LevelDB SSTable layout): data blocks of
prefix-compressed key/value entries, an index block pointing at them, and a 48-byte footer.
Key "" holds a `BundleHeaderProto`; every other key a `BundleEntryProto` naming the shard,
offset and size of a tensor's bytes. TensorFlow writes these tables uncompressed, and checks
each block's masked crc32c on read; so do we.
"""

from __future__ import annotations

import itertools
import math
import os
import stat
import struct
from pathlib import Path
from typing import TYPE_CHECKING

import google_crc32c
from google.protobuf.message import DecodeError

if TYPE_CHECKING:  # importing the proto imports TensorFlow: only when an index is read
    from tensorflow.core.protobuf import tensor_bundle_pb2

__all__ = ["BundleIndexError", "bad_checksums", "missing_bytes", "read_index"]

_MAGIC = 0xDB4775248B80FB57
_FOOTER_LEN = 48  # two BlockHandles padded to 40 bytes, then the fixed64 magic
_TRAILER_LEN = 5  # compression type byte + masked crc32c of block and type byte
_NO_COMPRESSION = 0
_DT_STRING = 7  # tensorflow.DataType
_SNAPPY = 1


class BundleIndexError(Exception):
    """The index file cannot be parsed: truncated, bad magic, bad checksum or bad proto."""


def _mask(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _masked_crc32c(data: bytes) -> int:
    """crc32c (Castagnoli) of data, masked as LevelDB and TensorFlow store it (google-crc32c:
    a C implementation, GB/s)."""
    return _mask(google_crc32c.value(data))


def _varint(buf: bytes, pos: int, limit: int, max_bytes: int = 10) -> tuple[int, int]:
    """Decode a little-endian base-128 varint at buf[pos:limit]; return (value, next pos)."""
    value = 0
    for i in range(max_bytes):
        if pos + i >= limit:
            raise BundleIndexError("truncated varint")
        byte = buf[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos + i + 1
    raise BundleIndexError("varint too long")


def _read_block(buf: bytes, handle: bytes, end: int) -> bytes:
    """The contents of the block a BlockHandle (varint offset, varint size) points at."""
    offset, pos = _varint(handle, 0, len(handle))
    size, _ = _varint(handle, pos, len(handle))
    if offset + size + _TRAILER_LEN > end:
        raise BundleIndexError(f"block at {offset}+{size} runs past the data ({end} bytes)")
    block = buf[offset : offset + size + 1]  # contents + compression type byte
    kind = block[-1]
    (stored_crc,) = struct.unpack_from("<I", buf, offset + size + 1)
    if _masked_crc32c(block) != stored_crc:
        raise BundleIndexError(f"block checksum mismatch at offset {offset}")
    if kind == _SNAPPY:
        raise BundleIndexError("snappy-compressed block (TensorFlow never writes one)")
    if kind != _NO_COMPRESSION:
        raise BundleIndexError(f"unknown block compression type {kind}")
    return block[:-1]


def _block_entries(block: bytes) -> list[tuple[bytes, bytes]]:
    """Decode a block's prefix-compressed (key, value) entries, in stored order."""
    if len(block) < 4:
        raise BundleIndexError("block too short")
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * num_restarts  # entries end where the restart array begins
    if limit < 0:
        raise BundleIndexError(f"bad restart count {num_restarts}")
    if num_restarts == 0:  # an empty block, as TensorFlow's reader sees it
        return []
    entries: list[tuple[bytes, bytes]] = []
    key, pos = b"", 0
    while pos < limit:
        shared, pos = _varint(block, pos, limit, 5)
        non_shared, pos = _varint(block, pos, limit, 5)
        value_len, pos = _varint(block, pos, limit, 5)
        if shared > len(key) or pos + non_shared + value_len > limit:
            raise BundleIndexError("corrupt block entry")
        key = key[:shared] + block[pos : pos + non_shared]
        pos += non_shared
        entries.append((key, block[pos : pos + value_len]))
        pos += value_len
    return entries


def read_index(
    index_path: Path,
) -> tuple[tensor_bundle_pb2.BundleHeaderProto, dict[str, tensor_bundle_pb2.BundleEntryProto]]:
    """Parse a tensor bundle index: (header, {tensor key: entry}), without the header key.

    Keys that are not UTF-8 (the encoded names of a partitioned variable's slices) are
    decoded with "surrogateescape". Raises OSError if the file cannot be read and
    BundleIndexError if its content does not parse.
    """
    # non-blocking open: a FIFO (or device) named like the index must not block the gate
    with os.fdopen(os.open(index_path, os.O_RDONLY | os.O_NONBLOCK), "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise BundleIndexError("not a regular file")
        buf = f.read()
    if not buf:
        raise BundleIndexError("empty file")
    if len(buf) < _FOOTER_LEN:
        raise BundleIndexError(f"truncated: {len(buf)} bytes, shorter than the footer")
    end = len(buf) - _FOOTER_LEN
    (magic,) = struct.unpack_from("<Q", buf, len(buf) - 8)
    if magic != _MAGIC:
        raise BundleIndexError("bad magic")
    footer = buf[end : len(buf) - 8]
    _, pos = _varint(footer, 0, len(footer))  # metaindex offset: TF's reader ignores the
    _, pos = _varint(footer, pos, len(footer))  # metaindex block (no filters), so do we
    records: list[tuple[bytes, bytes]] = []
    for _, handle in _block_entries(_read_block(buf, footer[pos:], end)):
        records.extend(_block_entries(_read_block(buf, handle, end)))
    if not records or records[0][0] != b"":
        raise BundleIndexError("no header entry")
    if any(a >= b for (a, _), (b, _) in itertools.pairwise(records)):
        raise BundleIndexError("keys out of order")
    from tensorflow.core.protobuf import tensor_bundle_pb2

    header = tensor_bundle_pb2.BundleHeaderProto()
    entries: dict[str, tensor_bundle_pb2.BundleEntryProto] = {}
    try:
        header.ParseFromString(records[0][1])
        for key, value in records[1:]:
            entry = tensor_bundle_pb2.BundleEntryProto()
            entry.ParseFromString(value)
            entries[key.decode("utf-8", "surrogateescape")] = entry
    except DecodeError as e:
        raise BundleIndexError(f"bad proto: {e}") from e
    return header, entries


def missing_bytes(variables_dir: Path, prefix: str = "variables") -> str | None:
    """None if the bundle at variables_dir/prefix is whole, else a short reason why not.

    Whole means: the index parses and each shard holding an entry exists with at least
    max(offset + size) bytes of its entries. Shard data is only stat'ed, never read.
    A partitioned variable's own entry (with `slices`) holds no data; its slices are
    separate entries, checked like any other.
    """
    variables_dir = Path(variables_dir)
    shown = f"{variables_dir.name}/{prefix}"
    try:
        header, entries = read_index(variables_dir / f"{prefix}.index")
    except FileNotFoundError:
        return f"{shown}.index missing"
    except OSError as e:
        return f"{shown}.index unreadable: {e.strerror or e}"
    except BundleIndexError as e:
        return f"{shown}.index does not parse: {e}"
    num_shards = header.num_shards
    needed: dict[int, int] = {}
    for key, entry in entries.items():
        if entry.slices:
            continue
        if not 0 <= entry.shard_id < num_shards:
            name = key.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            return f"{shown}.index: {name!r} is in shard {entry.shard_id} of {num_shards}"
        needed[entry.shard_id] = max(needed.get(entry.shard_id, 0), entry.offset + entry.size)
    for shard, need in sorted(needed.items()):
        name = f"{prefix}.data-{shard:05d}-of-{num_shards:05d}"
        try:
            st = os.stat(variables_dir / name)
        except FileNotFoundError:
            return f"{variables_dir.name}/{name} missing"
        except OSError as e:
            return f"{variables_dir.name}/{name} unreadable: {e.strerror or e}"
        if not stat.S_ISREG(st.st_mode):
            return f"{variables_dir.name}/{name} is not a file"
        if st.st_size < need:
            return f"{variables_dir.name}/{name}: {st.st_size} of {need} bytes"
    return None


def _tensor_crc(piece: bytes, entry: tensor_bundle_pb2.BundleEntryProto) -> int:
    """The masked crc32c TensorFlow records for a tensor's bytes. A string tensor is stored
    as varint lengths, a 4-byte checksum and the strings, but its crc covers the lengths as
    uint32 (uint64 past 4 GiB) in place of the varints (tensor_bundle.cc)."""
    if entry.dtype != _DT_STRING:
        return _mask(google_crc32c.value(piece))
    count = math.prod(d.size for d in entry.shape.dim)
    pos, lengths = 0, bytearray()
    try:
        for _ in range(count):
            length, pos = _varint(piece, pos, len(piece))
            lengths += struct.pack("<I" if length <= 0xFFFFFFFF else "<Q", length)
    except BundleIndexError:
        return -1  # lengths not written yet
    crc = google_crc32c.value(bytes(lengths))
    return _mask(google_crc32c.extend(crc, piece[pos:]))


def bad_checksums(variables_dir: Path, prefix: str = "variables") -> str | None:
    """None if every tensor's bytes match the crc32c its index entry records, else the first
    tensor that does not. Reads every byte of the shards: the proof for a shard allocated
    at full size and then filled (parallel downloaders, `fallocate`), whose size is right
    long before its content. Call `missing_bytes` first."""
    variables_dir = Path(variables_dir)
    try:
        header, entries = read_index(variables_dir / f"{prefix}.index")
    except (OSError, BundleIndexError) as e:
        return f"{variables_dir.name}/{prefix}.index unreadable: {e}"
    by_shard: dict[int, list[tuple[str, tensor_bundle_pb2.BundleEntryProto]]] = {}
    for key, entry in entries.items():
        if not entry.slices and entry.size:
            by_shard.setdefault(entry.shard_id, []).append((key, entry))
    for shard, items in sorted(by_shard.items()):
        name = f"{prefix}.data-{shard:05d}-of-{header.num_shards:05d}"
        try:
            with open(variables_dir / name, "rb", buffering=0) as f:
                for key, entry in sorted(items, key=lambda item: item[1].offset):
                    f.seek(entry.offset)  # one read per tensor: no copy of the whole shard
                    if _tensor_crc(f.read(entry.size), entry) != entry.crc32c:
                        shown = key.encode("utf-8", "surrogateescape").decode(
                            "utf-8", "backslashreplace")
                        return (f"{variables_dir.name}/{name}: the bytes of {shown!r} do not "
                                f"match their checksum yet (still being written?)")
        except OSError as e:
            return f"{variables_dir.name}/{name} unreadable: {e.strerror or e}"
    return None
