"""A FUSE file system that hangs like a dead NFS server: every lookup below its root
blocks until the file RELEASE exists. Usage: python hangfs.py MOUNTPOINT RELEASE"""

from __future__ import annotations

import errno
import os
import stat
import sys
import time
from typing import Any

from fuse import FUSE, FuseOSError, Operations  # type: ignore[import-untyped]


class Hang(Operations):  # type: ignore[misc]
    def __init__(self, release: str) -> None:
        self.release = release

    def _hang(self) -> None:
        while not os.path.exists(self.release):
            time.sleep(0.05)

    def getattr(self, path: str, fh: Any = None) -> dict[str, int]:
        if path == "/":
            return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2}
        self._hang()
        raise FuseOSError(errno.ENOENT)

    def readdir(self, path: str, fh: Any) -> list[str]:
        self._hang()
        return [".", ".."]


if __name__ == "__main__":
    FUSE(Hang(sys.argv[2]), sys.argv[1], foreground=True)
