"""Replica cache folders that outlive no replica: a lease (an `flock` held while the process
lives) on each, and a sweep of the siblings whose lease nobody holds.

A Ray replica mirrors into `<cache_dir>/replicas/<member>` and removes it on shutdown; one
that is killed cannot. The kernel drops a dead process's `flock`, so the next replica to
start on the node finds that folder's lease free and removes the folder (a full model copy
otherwise left on the disk until `remote.min_free` stops every download).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from pathlib import Path
from typing import IO

from modelswap.logger import get_logger

log = get_logger("modelswap.fleet")
LEASE = ".lease"


def claim(folder: Path) -> IO[bytes]:
    """Create `folder` and hold its lease; keep the returned file open for as long as the
    folder is in use (closing it, or the process ending, gives the lease up)."""
    folder.mkdir(parents=True, exist_ok=True)
    fresh = folder / f"{LEASE}-{os.getpid()}-{id(folder):x}"  # locked before it is the lease
    lease = open(fresh, "wb")  # noqa: SIM115 - held open on purpose
    try:
        fcntl.flock(lease.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.replace(fresh, folder / LEASE)
    except OSError:
        lease.close()
        with contextlib.suppress(OSError):
            fresh.unlink()
        raise
    return lease


def sweep(parent: Path, keep: Path | None = None) -> list[Path]:
    """Remove the folders under `parent` (but `keep`) whose lease exists and nobody holds;
    a folder with no lease yet may be one a replica is just creating, and is left alone.
    Returns the folders removed."""
    removed: list[Path] = []
    try:
        entries = sorted(p for p in parent.iterdir() if p.is_dir() and p != keep)
    except OSError:
        return removed
    for folder in entries:
        try:
            fd = os.open(folder / LEASE, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # held: its replica is alive
        try:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
            log.info("replica_cache_removed", path=str(folder), reason="its replica is gone")
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)
    return removed
