"""Decide whether one listed remote version is complete, and if so what to download.

With a manifest: the manifest must parse, name the configured tag set, and every file it
lists must be listed with its size. With `_modelswap_claim` and no manifest, a publish is
still running: wait for its manifest. Otherwise: the content proof (`proof.prove`).
"""

from __future__ import annotations

from collections.abc import Collection

from .client import Client
from .download import Plan
from .errors import RemoteError
from .listing import VersionObjects
from .manifest import CLAIM_NAME, MANIFEST_NAME, Manifest, ManifestError
from .proof import ShardNeeds, Verdict, default_shard_needs, prove

__all__ = ["judge"]


def _with_manifest(client: Client, objs: VersionObjects,
                   tags: Collection[str]) -> tuple[Verdict, Plan | None]:
    info = objs.objects[MANIFEST_NAME]
    try:
        data = client.get_bytes(f"{objs.name}/{MANIFEST_NAME}", if_match=info.etag)
    except RemoteError as e:
        if e.kind in ("changed", "not_found"):
            return Verdict("incomplete", f"{MANIFEST_NAME} changed while being read"), None
        raise
    try:
        manifest = Manifest.from_json(data)
    except ManifestError as e:
        return Verdict("failed", str(e)), None
    if manifest.tags and sorted(tags) not in [sorted(t) for t in manifest.tags]:
        return Verdict("failed", f"no MetaGraph with tags {sorted(tags)}; "
                                 f"it has {[list(t) for t in manifest.tags]}"), None
    files = []
    for entry in manifest.files:
        listed = objs.objects.get(entry.path)
        if listed is None:
            return Verdict("incomplete", f"{entry.path} in the manifest is not in the store"), None
        if listed.size != entry.size:
            return Verdict("incomplete", f"{entry.path}: {listed.size} bytes in the store, "
                                         f"{entry.size} in the manifest"), None
        files.append((entry.path, entry.size, listed.etag))
    return Verdict("complete"), Plan(objs.version, objs.name, tuple(files), manifest, data)


def judge(client: Client, objs: VersionObjects, tags: Collection[str],
          shard_needs: ShardNeeds = default_shard_needs) -> tuple[Verdict, Plan | None]:
    """(verdict, download plan if complete). Store failures raise `RemoteError`."""
    if MANIFEST_NAME in objs.objects:
        return _with_manifest(client, objs, tags)
    if CLAIM_NAME in objs.objects:
        return Verdict("incomplete", "publish in progress (no manifest yet)"), None
    verdict = prove(client, objs, tags, shard_needs)
    if verdict.state != "complete":
        return verdict, None
    files = tuple((o.path, o.size, o.etag) for o in sorted(
        objs.objects.values(), key=lambda o: o.path))
    return verdict, Plan(objs.version, objs.name, files)
