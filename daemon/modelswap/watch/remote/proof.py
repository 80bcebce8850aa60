"""The remote content proof: is a version with no manifest complete, from what is listed?

Reads only `saved_model.pb` and `variables/variables.index` (two GETs, each pinned to the
listed ETag), never a shard: the listing already gives every object's size. Complete when
the pb parses, has a MetaGraph with the configured tags, every asset it names is there,
and every shard the index names holds at least the bytes its entries need. Objects appear
whole on object stores, so a pb or index that does not parse is an error, not "wait".
"""

from __future__ import annotations

import importlib
import os
import tempfile
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from . import savedmodel
from .client import Client
from .errors import RemoteError
from .listing import VersionObjects

__all__ = ["INDEX", "IndexUnreadable", "ShardNeeds", "Verdict", "default_shard_needs", "prove"]

INDEX = "variables/variables.index"
ShardNeeds = Callable[[bytes], dict[str, int]]
"""Index bytes → {shard file name in `variables/`: bytes its entries need}."""


class IndexUnreadable(ValueError):
    """The tensor bundle index does not parse."""


@dataclass(frozen=True)
class Verdict:
    state: Literal["complete", "incomplete", "failed"]
    reason: str | None = None


COMPLETE = Verdict("complete")


def _bundle_module() -> ModuleType:
    """The index reader: `modelswap.gate.bundle` (Layout v2), else `modelswap.bundle`."""
    try:
        return importlib.import_module("modelswap.gate.bundle")
    except ImportError:
        return importlib.import_module("modelswap.bundle")


def default_shard_needs(index_bytes: bytes) -> dict[str, int]:
    """Shard needs from the package's own index reader (`read_index`, which reads a path:
    the bytes go through a private temporary file)."""
    bundle = _bundle_module()
    fd, name = tempfile.mkstemp(prefix="modelswap-index-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(index_bytes)
        header, entries = bundle.read_index(Path(name))
    except bundle.BundleIndexError as e:
        raise IndexUnreadable(str(e)) from None
    finally:
        os.unlink(name)
    return needs_from_entries(header, entries)


def needs_from_entries(header: Any, entries: dict[str, Any]) -> dict[str, int]:
    """{shard file: max(offset + size)} over `BundleEntryProto`s; slices hold no data."""
    num = header.num_shards
    needs: dict[str, int] = {}
    for key, entry in entries.items():
        if entry.slices:
            continue
        if not 0 <= entry.shard_id < num:
            raise IndexUnreadable(f"{key!r} is in shard {entry.shard_id} of {num}")
        shard = f"variables.data-{entry.shard_id:05d}-of-{num:05d}"
        needs[shard] = max(needs.get(shard, 0), entry.offset + entry.size)
    return needs


def _needs_variables(graph: Any) -> bool:
    """TF2 SavedModels (an object graph) always have an index; TF1 ones when saved by a Saver."""
    return bool(graph.object_graph_def.nodes) or bool(graph.saver_def.filename_tensor_name)


def _get(client: Client, listing: VersionObjects, rel: str) -> bytes | Verdict:
    info = listing.objects[rel]
    try:
        return client.get_bytes(f"{listing.name}/{rel}", if_match=info.etag)
    except RemoteError as e:
        if e.kind in ("changed", "not_found"):
            return Verdict("incomplete", f"{rel} changed while being read")
        raise


def prove(client: Client, listing: VersionObjects, tags: Collection[str],
          shard_needs: ShardNeeds = default_shard_needs) -> Verdict:
    """The verdict on a version with no manifest. Store failures raise `RemoteError`."""
    objects = listing.objects
    pb = next((n for n in savedmodel.PB_NAMES if n in objects), None)
    if pb is None:
        return Verdict("incomplete", "saved_model.pb missing")
    data = _get(client, listing, pb)
    if isinstance(data, Verdict):
        return data
    try:
        graph = savedmodel.meta_graph(savedmodel.parse(data, text=pb.endswith("txt")), tags)
    except savedmodel.SavedModelError as e:
        return Verdict("failed", f"{pb} {e}")
    for asset in savedmodel.asset_files(graph):
        if asset not in objects:
            return Verdict("incomplete", f"{asset} missing")
    if INDEX not in objects:
        return Verdict("incomplete", f"{INDEX} missing") if _needs_variables(graph) else COMPLETE
    index = _get(client, listing, INDEX)
    if isinstance(index, Verdict):
        return index
    try:
        needs = shard_needs(index)
    except IndexUnreadable as e:
        return Verdict("failed", f"{INDEX} does not parse: {e}")
    for shard, need in sorted(needs.items()):
        info = objects.get(f"variables/{shard}")
        if info is None:
            return Verdict("incomplete", f"variables/{shard} missing")
        if info.size < need:
            return Verdict("incomplete", f"variables/{shard}: {info.size} of {need} bytes")
    return COMPLETE
