"""Local watching: watchdog (inotify) observers, and poll mode, both posting hints only.

A hint names a model and a path; the coordinator re-lists the disk, so handlers do no I/O
and never block. Each base path gets a recursive watch, and its parent a plain one, so a
base path renamed in as a whole is seen at once. A base path that is missing is watched
through its nearest existing parent until it appears; one deleted and re-created is watched
again. Models in poll mode (`watch.mode: poll`, or network and FUSE file systems in auto
mode) get no watch: `watch/poll.py` stats their base paths every `poll_interval` and posts
a hint when one changed (bench/ figure 6 measured watchdog's PollingObserver at 55x the
CPU of one listing thread for 1,000 models).
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
import warnings
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

from modelswap.gate.mounts import needs_polling_cached
from modelswap.logger import get_logger
from modelswap.watch.poll import Poller

log = get_logger("modelswap.source")
# watchdog warns when a folder renamed inside a watched tree (.incoming-9/variables →
# 9/variables) is watched again under its new name: the same inotify watch and callback
warnings.filterwarnings("ignore", message="Callback with id .* already exists for watch",
                        category=RuntimeWarning, module="watchdog")

# Opens and reads (ours and TensorFlow's) must not come back as hints.
EVENT_FILTER = [FileCreatedEvent, DirCreatedEvent, FileDeletedEvent, DirDeletedEvent,
                FileMovedEvent, DirMovedEvent, FileModifiedEvent, FileClosedEvent]
Hint = Callable[[str, Path, bool], None]  # (model, event path, path is a rename's target)
PLACE_TIMEOUT = 1.0  # seconds the watch thread waits for one model's placement


def _staging(base: Path | None, path: Path) -> bool:
    """`path` lies in a hidden folder of the base path (`.incoming-7`, `.staging`): what
    is written there is no version until it is renamed in, and the rename is its own event."""
    if base is None or path == base or base not in path.parents:
        return False
    return path.relative_to(base).parts[0].startswith(".")


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


@dataclass(frozen=True)
class _Configure:
    models: Mapping[str, Path]
    mode: str
    poll_interval: float
    rescan_interval: float


class Source(FileSystemEventHandler):
    """Watches every model's base path; calls `hint(name, path, moved_to)` on changes."""

    def __init__(self, models: Mapping[str, Path], hint: Hint, *, mode: str = "auto",
                 poll_interval: float = 1.0, rescan_interval: float = 30.0,
                 settled: Callable[[str], bool] = lambda name: False) -> None:
        """`settled(name)`: no version of `name` waits to be complete, so a poll tick that
        sees its base path unchanged posts no hint."""
        super().__init__()
        self._hint = hint
        self._mode = mode
        self._poller = Poller(hint, settled, poll_interval)
        self._rescan_interval = rescan_interval
        self._bases = dict(models)
        self._observers: dict[str, BaseObserver] = {}
        self._placements: dict[str, tuple[_Placement, ...]] = {}
        self._watches: dict[_Placement, tuple[ObservedWatch, set[str]]] = {}
        self._routes: dict[Path, frozenset[str]] = {}  # base path → models (prefix match)
        self._waiting: dict[Path, frozenset[str]] = {}  # ancestors of missing bases (exact)
        self._lock = threading.Lock()
        self._requests: queue.SimpleQueue[str | _Configure | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="modelswap-watch", daemon=True)
        self._stopped = False
        self._placing: dict[str, threading.Thread] = {}  # placements under way

    # -- lifecycle (any thread) ------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._poller.stop()
        self._requests.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout=10)
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

    def configure(self, models: Mapping[str, Path], mode: str, poll_interval: float,
                  rescan_interval: float) -> None:
        """Apply a reloaded config (from any thread; applied on the watch thread)."""
        self._requests.put(_Configure(dict(models), mode, poll_interval, rescan_interval))

    def polled(self) -> frozenset[str]:
        """The models watched by polling (any thread)."""
        with self._lock:
            return frozenset(n for n, p in self._placements.items() if p and p[0].kind == "poll")

    def alive(self) -> bool:
        """The watch thread and every observer thread are running."""
        with self._lock:
            observers = list(self._observers.values())
        return self._thread.is_alive() and all(o.is_alive() for o in observers)

    def mode_of(self, name: str) -> str | None:
        """"inotify" or "poll": how `name` is watched right now."""
        placements = self._placements.get(name)
        return placements[0].kind if placements else None

    # -- the watch thread --------------------------------------------------------------------
    def _run(self) -> None:
        self._ensure(*sorted(self._bases))
        next_sweep = time.monotonic() + self._rescan_interval
        while True:
            try:
                request = self._requests.get(timeout=max(next_sweep - time.monotonic(), 0.0))
            except queue.Empty:
                request = ""
            if request is None:
                return
            try:
                self._serve(request)
            except Exception:  # a bug here must not end watching
                log.exception("watch_step_failed")
            now = time.monotonic()
            if now >= next_sweep:  # the safety net: re-place every watch
                next_sweep = now + self._rescan_interval
                self._ensure(*sorted(self._bases))

    def _serve(self, request: str | _Configure) -> None:
        if isinstance(request, _Configure):
            self._mode, self._poller.interval = request.mode, request.poll_interval
            self._rescan_interval = request.rescan_interval
            for name in set(self._bases) - set(request.models):
                self._place(name, ())
            self._bases = dict(request.models)
            self._ensure(*sorted(self._bases))
        elif request:
            self._ensure(request)

    def _ensure(self, *names: str) -> None:
        """`_place_now` for `names` on other threads: a base path on a hung mount (stat
        blocks) must not stop the other models' watches. One thread per file system the
        models are placed on now (by parent folder for those not placed yet), waited for
        while it makes progress, given up on once one model takes `PLACE_TIMEOUT`."""
        groups: dict[object, list[str]] = {}
        for name in names:
            if name not in self._bases or (name in self._placing
                                            and self._placing[name].is_alive()):
                continue  # gone, or still stuck since the last try
            where = self._placements.get(name)
            key = where[0].inode[0] if where else self._bases[name].parent
            groups.setdefault(key, []).append(name)
        running = []
        for group in groups.values():
            done: list[float] = [time.monotonic()]  # the time of each model placed
            thread = threading.Thread(target=self._place_group, args=(group, done),
                                      daemon=True, name=f"modelswap-watch-place-{group[0]}")
            self._placing.update(dict.fromkeys(group, thread))
            running.append((thread, group, done))
            thread.start()
        for thread, group, done in running:
            while thread.is_alive() and time.monotonic() - done[-1] < PLACE_TIMEOUT:
                thread.join(min(PLACE_TIMEOUT, 0.05))
            if thread.is_alive():
                log.warning("watch_placement_slow", model=group[len(done) - 1],
                            models_waiting=len(group) - len(done) + 1, waited_s=PLACE_TIMEOUT,
                            base_path=str(self._bases.get(group[len(done) - 1])),
                            hint="its file system does not answer")
            else:
                for name in group:
                    del self._placing[name]

    def _place_group(self, names: list[str], done: list[float]) -> None:
        for name in names:
            self._place_now(name)
            done.append(time.monotonic())

    def _place_now(self, name: str) -> bool:
        """Put the watches for `name` where they belong now; True when they moved."""
        base = self._bases.get(name)
        if base is None or self._stopped:
            return False
        target = _nearest_existing(base)
        try:
            st = target.stat()
        except OSError:
            return False
        poll = self._mode == "poll" or (
            self._mode == "auto" and needs_polling_cached(target, st.st_dev))
        kind = "poll" if poll else "inotify"
        placements = [_Placement(kind, target, target == base, (st.st_dev, st.st_ino))]
        if kind == "inotify" and target == base and base.parent != base:
            with contextlib.suppress(OSError):  # the parent: a base path renamed in
                pst = base.parent.stat()
                placements.append(_Placement(kind, base.parent, False,
                                             (pst.st_dev, pst.st_ino)))
        if self._placements.get(name) == tuple(placements):
            return False
        self._place(name, tuple(placements))
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

    def _place(self, name: str, placements: tuple[_Placement, ...]) -> None:
        with self._lock:
            for old in self._placements.pop(name, ()):
                if old.kind != "inotify" or old not in self._watches:
                    continue
                watch, names = self._watches[old]
                names.discard(name)
                if not names:
                    del self._watches[old]
                    with contextlib.suppress(KeyError, OSError):
                        self._observers[old.kind].unschedule(watch)
            placed = []
            for placement in placements:
                if placement.kind == "inotify" and placement in self._watches:
                    self._watches[placement][1].add(name)
                elif placement.kind == "inotify":
                    try:
                        watch = self._observer(placement.kind).schedule(
                            self, str(placement.target), recursive=placement.recursive,
                            event_filter=EVENT_FILTER)
                    except OSError as exc:
                        log.warning("watch_failed", model=name, path=str(placement.target),
                                    error=str(exc))
                        continue
                    self._watches[placement] = (watch, {name})
                placed.append(placement)
            if placed:
                self._placements[name] = tuple(placed)
            routes: dict[Path, set[str]] = {}
            waiting: dict[Path, set[str]] = {}
            for other, where in self._placements.items():
                base = self._bases[other]
                routes.setdefault(base, set()).add(other)
                if not where[0].recursive:
                    for parent in base.parents:
                        if parent == where[0].target:
                            break
                        waiting.setdefault(parent, set()).add(other)
            self._routes = {path: frozenset(names) for path, names in routes.items()}
            self._waiting = {path: frozenset(names) for path, names in waiting.items()}
            self._poller.assign({other: (self._bases[other], where[0].inode[0])
                                 for other, where in self._placements.items()
                                 if where[0].kind == "poll"})

    # -- events (observer thread: no I/O, no blocking) ----------------------------------
    def on_any_event(self, event: FileSystemEvent) -> None:
        routes, waiting = self._routes, self._waiting
        moved_to = os.fsdecode(getattr(event, "dest_path", "") or "")
        for raw, dest in ((os.fsdecode(event.src_path), False), (moved_to, True)):
            if not raw:
                continue
            path = Path(raw)
            names: set[str] = set(waiting.get(path, ()))
            replace = set(names) | set(routes.get(path, ()))  # a base path or its way there
            for candidate in (path, *path.parents):
                found = routes.get(candidate)
                if found:
                    names.update(found)
            for name in names:
                if not _staging(self._bases.get(name), path):
                    self._hint(name, path, dest)
            for name in replace:
                self._requests.put(name)
