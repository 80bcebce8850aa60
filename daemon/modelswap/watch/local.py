"""Filesystem source: watchdog observers that turn events into "model X may have changed".

Events are hints only (the coordinator re-lists the disk), so handlers do no I/O
and never block. Models in poll mode (`watch.mode: poll`, or network and FUSE
filesystems in auto mode) get no watchdog watch: the coordinator re-lists them
every `poll_interval` itself, which is what a polling observer would do, in one
thread instead of one per base path (bench/ figure 6 measured watchdog's
PollingObserver at 55x the CPU of one listing thread for 1,000 models).

A base path that is missing is watched through its nearest existing parent until it
appears; a base path that is deleted and re-created is re-watched (watchdog needs an
unschedule before a re-schedule of a dead watch).
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.inotify import InotifyObserver

from modelswap.logger import get_logger

log = get_logger("modelswap.source")

# Opens and reads (ours and TensorFlow's) must not come back as hints.
EVENT_FILTER = [FileCreatedEvent, DirCreatedEvent, FileDeletedEvent, DirDeletedEvent,
                FileMovedEvent, DirMovedEvent, FileModifiedEvent, FileClosedEvent]
NETWORK_FS = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "glusterfs",
                        "lustre", "gpfs", "afs", "beegfs", "davfs", "virtiofs", "fuse",
                        "fuseblk", "sshfs", "ncpfs", "ocfs2", "gfs2"})

Hint = Callable[[str, Path, bool], None]  # (model, event path, path is a rename's target)


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
def _needs_polling_cached(path: Path, device: int) -> bool:
    return needs_polling(path)


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        with contextlib.suppress(OSError):  # EACCES: look further up
            if candidate.is_dir():
                return candidate
    return Path("/")


@dataclass(frozen=True)
class _Placement:
    kind: str  # "inotify" | "poll"
    target: Path
    recursive: bool
    inode: tuple[int, int]


class Source(FileSystemEventHandler):
    """Watches every model's base path; calls `hint(name, path, moved_to)` on changes."""

    def __init__(self, models: Mapping[str, Path], hint: Hint, *, mode: str = "auto",
                 poll_interval: float = 1.0) -> None:
        super().__init__()
        self._hint = hint
        self._mode = mode
        self._poll_interval = poll_interval
        self._bases = dict(models)
        self._observers: dict[str, BaseObserver] = {}
        self._placements: dict[str, _Placement] = {}
        self._watches: dict[_Placement, tuple[ObservedWatch, set[str]]] = {}
        self._routes: dict[Path, frozenset[str]] = {}  # base path → models (prefix match)
        self._waiting: dict[Path, frozenset[str]] = {}  # ancestors of missing bases (exact)
        self._lock = threading.Lock()
        self._stopped = False

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        for name in sorted(self._bases):
            self.ensure(name)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            observers = list(self._observers.values())
            self._observers.clear()
            self._watches.clear()
            self._placements.clear()
        for observer in observers:
            observer.stop()
        for observer in observers:
            if observer.is_alive():
                observer.join(timeout=5)

    def configure(self, models: Mapping[str, Path], mode: str, poll_interval: float) -> None:
        """Apply a reloaded config (call from the coordinator thread)."""
        self._mode, self._poll_interval = mode, poll_interval
        self.set_models(models)

    @property
    def poll_interval(self) -> float:
        return self._poll_interval

    def polled(self) -> frozenset[str]:
        """The models the coordinator must re-list every `poll_interval`."""
        return frozenset(name for name, p in self._placements.items() if p.kind == "poll")

    def alive(self) -> bool:
        """Every observer thread is running."""
        with self._lock:
            observers = list(self._observers.values())
        return all(observer.is_alive() for observer in observers)

    def set_models(self, models: Mapping[str, Path]) -> None:
        """Replace the watched set (config reload)."""
        for name in set(self._bases) - set(models):
            self._place(name, None)
        self._bases = dict(models)
        for name in sorted(models):
            self.ensure(name)

    def mode_of(self, name: str) -> str | None:
        """"inotify" or "poll": how `name` is watched right now."""
        placement = self._placements.get(name)
        return placement.kind if placement else None

    # -- placement (coordinator thread) ------------------------------------------------
    def ensure(self, name: str) -> bool:
        """Put the watch for `name` where it belongs now; True when it moved."""
        base = self._bases.get(name)
        if base is None or self._stopped:
            return False
        target = _nearest_existing(base)
        try:
            st = target.stat()
        except OSError:
            return False
        if self._mode == "poll" or (
                self._mode == "auto" and _needs_polling_cached(target, st.st_dev)):
            kind = "poll"
        else:
            kind = "inotify"
        placement = _Placement(kind, target, target == base, (st.st_dev, st.st_ino))
        if self._placements.get(name) == placement:
            return False
        self._place(name, placement)
        log.info("watching", model=name, path=str(target), mode=kind,
                 base_path=str(base), waiting_for_base=target != base)
        return True

    def _observer(self, kind: str) -> BaseObserver:
        observer = self._observers.get(kind)
        if observer is None:
            observer = InotifyObserver(generate_full_events=True)
            observer.name = f"modelswap-{kind}-observer"
            observer.daemon = True
            observer.start()
            self._observers[kind] = observer
        return observer

    def _place(self, name: str, placement: _Placement | None) -> None:
        with self._lock:
            old = self._placements.pop(name, None)
            if old is not None and old.kind == "inotify":
                watch, names = self._watches[old]
                names.discard(name)
                if not names:
                    del self._watches[old]
                    with contextlib.suppress(KeyError, OSError):
                        self._observers[old.kind].unschedule(watch)
            if placement is not None and placement.kind == "poll":
                self._placements[name] = placement
            elif placement is not None:
                if placement in self._watches:
                    self._watches[placement][1].add(name)
                else:
                    try:
                        watch = self._observer(placement.kind).schedule(
                            self, str(placement.target), recursive=placement.recursive,
                            event_filter=EVENT_FILTER)
                    except OSError as exc:
                        log.warning("watch_failed", model=name, path=str(placement.target),
                                    error=str(exc))
                        return
                    self._watches[placement] = (watch, {name})
                self._placements[name] = placement
            routes: dict[Path, set[str]] = {}
            waiting: dict[Path, set[str]] = {}
            for other, where in self._placements.items():
                base = self._bases[other]
                routes.setdefault(base, set()).add(other)
                if not where.recursive:
                    for parent in base.parents:
                        if parent == where.target:
                            break
                        waiting.setdefault(parent, set()).add(other)
            self._routes = {path: frozenset(names) for path, names in routes.items()}
            self._waiting = {path: frozenset(names) for path, names in waiting.items()}

    # -- events (observer thread: no I/O, no blocking) ----------------------------------
    def on_any_event(self, event: FileSystemEvent) -> None:
        routes, waiting = self._routes, self._waiting
        moved_to = os.fsdecode(getattr(event, "dest_path", "") or "")
        for raw, dest in ((os.fsdecode(event.src_path), False), (moved_to, True)):
            if not raw:
                continue
            path = Path(raw)
            names: set[str] = set(waiting.get(path, ()))
            for candidate in (path, *path.parents):
                found = routes.get(candidate)
                if found:
                    names.update(found)
            for name in names:
                self._hint(name, path, dest)
