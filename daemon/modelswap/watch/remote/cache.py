"""The local mirror of one model: `<cache_dir>/<model>/<N>` folders, each renamed in whole.

Downloads go to `.incoming-<N>` and are renamed in after verification and fsync; pruned
versions are renamed to `.deleting-…` before removal. Either leftover (a process killed
midway) is deleted by `prepare()`, so nothing partial is ever at a version's path.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

from .listing import parse_version
from .manifest import MANIFEST_NAME

__all__ = ["Cache", "fsync_dir", "fsync_tree"]

_INCOMING, _DELETING = ".incoming-", ".deleting-"
_SOURCE = ".modelswap-source-"  # + model, beside its folder: the URL its versions came from


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every directory under `root` (files are fsynced as they are written)."""
    for dirpath, _, _ in os.walk(root, topdown=False):
        fsync_dir(Path(dirpath))


class Cache:
    """One model's cache folder."""

    def __init__(self, cache_dir: Path, model: str) -> None:
        if not model or "/" in model or model in (".", "..") or "\0" in model:
            raise ValueError(f"invalid model name {model!r}")
        self.dir = Path(cache_dir) / model

    def prepare(self) -> list[str]:
        """Create the folder; delete leftovers of interrupted downloads and prunes."""
        self.dir.mkdir(parents=True, exist_ok=True)
        removed = []
        for entry in sorted(self.dir.iterdir()):
            if entry.name.startswith((_INCOMING, _DELETING)):
                _remove(entry)
                removed.append(entry.name)
        return removed

    def claim(self, url: str) -> bool:
        """Record that this folder mirrors `url`; True if it mirrored another URL until now
        (its versions are then another store's, whatever their numbers)."""
        digest = hashlib.sha256(url.encode()).hexdigest()[:32]
        path = self.dir.parent / f"{_SOURCE}{self.dir.name}"
        try:
            before: str | None = path.read_text().strip()
        except FileNotFoundError:
            before = None
        if before != digest:
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(digest + "\n")
            os.replace(tmp, path)
        return before is not None and before != digest

    def _versions(self) -> dict[int, Path]:
        found = {}
        for entry in self.dir.iterdir() if self.dir.is_dir() else ():
            n = parse_version(entry.name)
            if n is not None and entry.is_dir() and not entry.is_symlink():
                found[n] = entry
        return found

    def reset_for(self, url: str) -> list[int] | None:
        """`claim(url)`; when the folder mirrored another URL, prune what it holds (same
        numbers, other content) and return those versions, else None."""
        if not self.claim(url):
            return None
        stale = sorted(self.mirrored())
        for n in stale:
            self.prune(n)
        return stale

    def mirrored(self) -> dict[int, Path]:
        """Versions this mirror put here (they hold a manifest)."""
        return {n: p for n, p in self._versions().items() if (p / MANIFEST_NAME).is_file()}

    def foreign(self) -> set[int]:
        """Version folders without a manifest: not ours, never touched."""
        return {n for n, p in self._versions().items() if not (p / MANIFEST_NAME).is_file()}

    def incoming(self, version: int) -> Path:
        """A fresh, empty `.incoming-<N>` folder."""
        path = self.dir / f"{_INCOMING}{version}"
        if path.exists():
            _remove(path)
        path.mkdir(parents=True)
        return path

    def commit(self, version: int, incoming: Path) -> Path:
        """fsync `incoming`, rename it to `<N>`, fsync the model folder."""
        target = self.dir / str(version)
        fsync_tree(incoming)
        os.rename(incoming, target)
        fsync_dir(self.dir)
        return target

    def discard(self, incoming: Path) -> None:
        _remove(incoming)

    def prune(self, version: int) -> None:
        """Remove version `N`: it disappears by one rename, then is deleted."""
        path = self.dir / str(version)
        doomed = self.dir / f"{_DELETING}{version}-{time.monotonic_ns()}"
        os.rename(path, doomed)
        fsync_dir(self.dir)
        _remove(doomed)

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.dir).free


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
