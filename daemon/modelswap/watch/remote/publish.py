"""`modelswap publish`: upload a local version folder, then its manifest, last.

Object stores have no atomic folder rename, so the manifest's existence commits the
version. `_modelswap_claim` marks a publish in progress (the mirror waits for the manifest rather
than proving the files itself); without a version number, the next one after the highest
there is claimed with a create-only write, so two publishers never share a number.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from modelswap.logger import get_logger

from . import savedmodel
from .client import Client, Counters
from .errors import RemoteError, redact
from .listing import list_versions
from .manifest import CLAIM_NAME, MANIFEST_NAME, Manifest, ManifestError, build_manifest
from .proof import INDEX, ShardNeeds, default_shard_needs
from .store import Remote, open_remote

__all__ = ["cli_publish", "publish"]

log = get_logger("modelswap.remote")
_MAX_CLAIMS = 20


def _check_whole(version_dir: Path, manifest: Manifest, shard_needs: ShardNeeds) -> None:
    """Refuse to publish a folder the remote gate would call incomplete."""
    sizes = {f.path: f.size for f in manifest.files}
    if INDEX in sizes:
        for shard, need in shard_needs((version_dir / INDEX).read_bytes()).items():
            if sizes.get(f"variables/{shard}", -1) < need:
                raise ManifestError(f"{version_dir}: variables/{shard} is missing or short")


def _claim(client: Client, version: int | None) -> int:
    """The version to write: `version`, or the next free number, claimed atomically."""
    if version is not None:
        try:
            client.head(f"{version}/{MANIFEST_NAME}")
        except RemoteError as e:
            if e.kind != "not_found":
                raise
            client.put(f"{version}/{CLAIM_NAME}", b"")
            return version
        raise RemoteError("exists", f"{client.remote.url}: version {version} is already "
                                    "published (versions are immutable)")
    for _ in range(_MAX_CLAIMS):
        listed = list_versions(client)
        version = max([*listed.versions, *listed.duplicates, 0]) + 1
        try:
            client.put(f"{version}/{CLAIM_NAME}", b"", create=True)
            return version
        except RemoteError as e:
            if e.kind != "exists":
                raise
    raise RemoteError("exists", f"{client.remote.url}: could not claim a version number")


def publish(local_version_dir: Path | str, url: str, version: int | None = None, *,
            remote: Remote | None = None, counters: Counters | None = None,
            shard_needs: ShardNeeds = default_shard_needs, threads: int = 4) -> int:
    """Upload `local_version_dir` as version `version` (default: the next number) of the base
    path `url`; return the version. Files first (saved_model.pb last of them, multipart
    for large ones), then the manifest. Raises `RemoteError` or `ManifestError`."""
    src = Path(local_version_dir)
    if version is not None and version < 1:
        raise ManifestError(f"version must be a positive integer, got {version}")
    manifest = build_manifest(src, 0)
    _check_whole(src, manifest, shard_needs)
    client = Client(remote or open_remote(url, mkdir=True), counters)
    number = _claim(client, version)
    manifest = dataclasses.replace(manifest, version=number)
    body = [f for f in manifest.files if f.path not in savedmodel.PB_NAMES]
    pbs = [f for f in manifest.files if f.path in savedmodel.PB_NAMES]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(lambda f: client.put(f"{number}/{f.path}", src / f.path), body))
    for f in pbs:
        client.put(f"{number}/{f.path}", src / f.path)
    client.put(f"{number}/{MANIFEST_NAME}", manifest.to_json())
    client.delete([f"{number}/{CLAIM_NAME}"])
    log.info("remote_published", url=client.remote.url, version=number,
             files=len(manifest.files), bytes=manifest.total_bytes)
    return number


def cli_publish(local_version_dir: str, url: str, version: int | None = None, *,
                out: Callable[[str], object] = print,
                err: Callable[[str], object] = lambda s: print(s, file=sys.stderr)) -> int:
    """`modelswap publish LOCAL_VERSION_DIR URL [--version N]`: 0 on success, 1 on error
    (one redacted line, no traceback)."""
    try:
        number = publish(local_version_dir, url, version)
    except (RemoteError, ManifestError, savedmodel.SavedModelError, OSError) as e:
        err(f"modelswap publish: error: {redact(str(e))}")
        return 1
    out(f"published {redact(url).rstrip('/')}/{number}")
    return 0
