"""Which file systems need polling: network and FUSE mounts, where inotify misses other
hosts' writes."""

from __future__ import annotations

import functools
import os
from pathlib import Path

NETWORK_FS = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "glusterfs",
                        "lustre", "gpfs", "afs", "beegfs", "davfs", "virtiofs", "fuse",
                        "fuseblk", "sshfs", "ncpfs", "ocfs2", "gfs2"})


def filesystem_type(path: Path) -> str:
    """The type of the filesystem `path` lives on, from /proc/self/mounts ("" if unknown)."""
    best, fstype = "", ""
    target = os.path.realpath(path)
    try:
        with open("/proc/self/mounts", encoding="utf-8") as mounts:
            for line in mounts:
                fields = line.split()
                if len(fields) < 3:
                    continue
                point = fields[1].replace("\\040", " ")
                inside = target == point or target.startswith(point.rstrip("/") + "/")
                if inside and len(point) >= len(best):
                    best, fstype = point, fields[2]
    except OSError:
        return ""
    return fstype


def needs_polling(path: Path) -> bool:
    """True on network and FUSE filesystems, where inotify misses other hosts' writes."""
    fstype = filesystem_type(path)
    return fstype in NETWORK_FS or fstype.startswith("fuse.")


@functools.lru_cache(maxsize=1024)
def needs_polling_cached(path: Path, device: int) -> bool:
    """`needs_polling`, remembered per (path, device)."""
    return needs_polling(path)
