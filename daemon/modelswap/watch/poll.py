"""Poll mode: a hint for a model only when its base path changed, or while it is unsettled.

Each tick `stat`s every polled base path (one call, cheaper than listing it) and posts a
hint when that stat changed on this tick or the one before (a second change within the
file system's timestamp granularity after our stat is caught by the next tick's listing),
or while the coordinator still waits for one of the model's versions to be complete (its
files change without the base path changing). What a stat cannot see, a file rewritten
in place inside a version that failed, the coordinator's rescan (`watch.rescan_interval`)
finds.

One thread per file system: a `stat` that blocks on a hung mount stalls only the models
on that mount, whose gate jobs could not run either.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

Hint = Callable[[str, Path, bool], None]
Signature = tuple[int, int, int, int] | None


def signature(path: Path) -> Signature:
    """What changes when an entry of `path` is created, removed or renamed; None when
    `path` cannot be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_nlink


class Poller:
    """Posts poll hints for the models `assign` gives it, every `interval` seconds."""

    def __init__(self, hint: Hint, settled: Callable[[str], bool], interval: float) -> None:
        self._hint = hint
        self._settled = settled
        self.interval = interval
        self._groups: dict[int, dict[str, Path]] = {}  # device → model → base path
        self._threads: dict[int, threading.Thread] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def assign(self, models: Mapping[str, tuple[Path, int]]) -> None:
        """Poll exactly `models` (name → base path, device of its nearest existing folder)."""
        groups: dict[int, dict[str, Path]] = {}
        for name, (base, device) in models.items():
            groups.setdefault(device, {})[name] = base
        with self._lock:
            self._groups = groups
            for device in groups:
                thread = self._threads.get(device)
                if thread is None or not thread.is_alive():
                    thread = threading.Thread(target=self._run, args=(device,), daemon=True,
                                              name=f"modelswap-poll-{device}")
                    self._threads[device] = thread
                    thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self, device: int) -> None:
        seen: dict[str, tuple[Signature, bool]] = {}  # model → (signature, changed last tick)
        while not self._stop.wait(self.interval):
            with self._lock:
                models = dict(self._groups.get(device, {}))
                if not models:
                    del self._threads[device]
                    return
            for name, base in sorted(models.items()):
                now = signature(base)
                before, changed_before = seen.get(name, (now, True))
                changed = now != before
                seen[name] = (now, changed)
                if changed or changed_before or not self._settled(name):
                    self._hint(name, base, False)
            for name in set(seen) - set(models):
                del seen[name]
