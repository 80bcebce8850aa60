"""A mirror's state as the rest of modelswap shows it: `VersionStatus` rows for versions not
in the cache yet (WAITING "downloading 12/40 MB"), and the `remote` JSON of `/v1/models`.

Progress is a status reason, read when asked: never an event or a log line.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modelswap.events import State, VersionStatus

from .state import MirrorStatus, RemoteVersion

__all__ = ["megabytes", "remote_json", "with_remote"]


def megabytes(done: int, total: int) -> str:
    """"12/40 MB" (one decimal below 10 MB: "0.3/1.2 MB")."""
    digits = 1 if total < 10_000_000 else 0
    return f"{done / 1e6:.{digits}f}/{total / 1e6:.{digits}f} MB"


def _row(v: RemoteVersion, path: Path, since: float) -> VersionStatus | None:
    if v.state == "downloading":
        return VersionStatus(v.version, State.WAITING, path,
                             f"downloading {megabytes(v.bytes_done, v.bytes_total)}",
                             "Downloading", since, v.attempts)
    if v.state == "incomplete":
        return VersionStatus(v.version, State.WAITING, path, f"in the store: {v.reason}",
                             "IncompleteModel", since)
    if v.state == "failed" and v.bytes_total:  # a download that failed: retried
        return VersionStatus(v.version, State.WAITING, path,
                             f"download failed, will retry: {v.reason}", "Downloading",
                             since, v.attempts)
    if v.state == "failed":  # the store's copy is bad (manifest, tags, unreadable pb)
        return VersionStatus(v.version, State.ERROR, path, f"in the store: {v.reason}",
                             "RemoteError", since)
    return None  # listed (not wanted) or mirrored (the local pipeline reports it)


def with_remote(local: Sequence[VersionStatus], mirror: MirrorStatus,
                local_dir: Path) -> tuple[VersionStatus, ...]:
    """`local` (the coordinator's rows), plus a row for each remote version that is not
    in the cache yet and that the local pipeline therefore does not know; newest first."""
    known = {s.version for s in local}
    now = time.time()
    extra = [row for v in mirror.versions if v.version not in known and v.in_store
             and (row := _row(v, local_dir / str(v.version), now)) is not None]
    return tuple(sorted([*local, *extra], key=lambda s: s.version, reverse=True))


def remote_json(mirror: MirrorStatus) -> dict[str, Any]:
    """The `remote` object of a model in `/v1/models` (URL and errors redacted)."""
    counters = dict(mirror.counters)
    return {
        "url": mirror.url,
        "reachable": mirror.reachable,
        "error": mirror.error,
        "error_kind": mirror.error_kind,
        "consecutive_failures": mirror.consecutive_failures,
        "last_listed": mirror.last_listed,
        "downloading": [{"version": v.version, "bytes_done": v.bytes_done,
                         "bytes_total": v.bytes_total}
                        for v in mirror.versions if v.state == "downloading"],
        "versions": [{"version": v.version, "state": v.state, "reason": v.reason,
                      "in_store": v.in_store} for v in mirror.versions],
        "requests": {k: counters.get(k, 0) for k in ("list", "get", "head")},
        "bytes_downloaded": counters.get("bytes_downloaded", 0),
    }
