"""The gate: runs the checks over one version folder, with caches keyed by file identity
and the daemon's own clock for "unchanged since"."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from modelswap.config.schema import TrustConfig
from modelswap.errors import IncompleteModel
from modelswap.gate.checks import CHECKS, Fail, Folder, Wait
from modelswap.gate.listing import parse_version
from modelswap.gate.mounts import needs_polling
from modelswap.gate.savedmodel import PB, PBTXT
from modelswap.gate.verdict import MetaInfo, Verdict
from modelswap.load.contract import signature_io

Identity = tuple[int, int, int, int, int, int]  # dev, ino, size, mtime_ns, mode, uid


def _identity(st: os.stat_result) -> Identity:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_mode, st.st_uid)


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except OSError:
        return None


def files_signature(version_dir: Path, marker: str | None) -> tuple[object, ...]:
    """Cheap identity of a version's files (stat only: saved_model.pb, fingerprint.pb, the
    marker, variables/, assets/, assets.extra/), to cache verdicts on and to tell whether
    the files changed."""
    parts: list[object] = []
    for name in (PB, PBTXT, "fingerprint.pb", marker):
        if name:
            st = _stat(version_dir / name)
            parts.append(None if st is None else _identity(st))
    for folder in ("variables", "assets", "assets.extra"):
        for root, _dirs, files in os.walk(version_dir / folder):
            for name in sorted(files):
                st = _stat(Path(root, name))
                parts.append((folder, root, name, None if st is None else _identity(st)))
    return tuple(parts)


@dataclass
class Gate:
    """The completeness gate of one model (see DESIGN.md). Not thread-safe: one gate job
    per model runs at a time."""

    settle: float
    verify: str = "auto"
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    _renamed: dict[Path, Identity] = field(default_factory=dict)  # pb path → identity
    _seen: dict[Path, dict[Path, tuple[Identity, float]]] = field(default_factory=dict)
    _local: dict[int, bool] = field(default_factory=dict)  # st_dev → local file system
    _cache: dict[Path, tuple[tuple[object, ...], Verdict]] = field(default_factory=dict)

    def note_renamed(self, dest: Path) -> None:
        """Record that `dest` (a saved_model.pb, a version folder or a base path) was
        renamed in: what it holds was complete when it appeared."""
        candidates = [dest] if dest.name in (PB, PBTXT) else [dest / PB, dest / PBTXT]
        st = _stat(dest)
        if st is not None and stat.S_ISDIR(st.st_mode):
            try:
                with os.scandir(dest) as entries:
                    for entry in entries:
                        if parse_version(entry.name) is not None:
                            candidates += [Path(entry.path) / PB, Path(entry.path) / PBTXT]
            except OSError:
                pass
        for path in candidates:
            st = _stat(path)
            if st is not None and stat.S_ISREG(st.st_mode):
                self._renamed[path] = _identity(st)

    def forget(self, version_dir: Path) -> None:
        """Drop what is cached for a folder that is gone."""
        self._cache.pop(version_dir, None)
        self._seen.pop(version_dir, None)
        for name in (PB, PBTXT):
            self._renamed.pop(version_dir / name, None)

    def forget_except(self, keep: set[Path]) -> None:
        """Drop what is cached for every version folder not in `keep`."""
        known = {*self._cache, *self._seen, *(p.parent for p in self._renamed)}
        for version_dir in known - keep:
            self.forget(version_dir)

    def atomic(self, version_dir: Path) -> bool:
        """Its saved_model.pb (alone, or with the whole folder) arrived by a rename."""
        for name in (PB, PBTXT):
            st = _stat(version_dir / name)
            if st is not None and self._renamed.get(version_dir / name) == _identity(st):
                return True
        return False

    def check(self, version_dir: Path, tags: frozenset[str], marker: str | None,
              trust_base: Path | None = None, trust: TrustConfig | None = None) -> Verdict:
        """Run the checks over one version folder (trust under `trust_base`, with the rules
        of `trust`); a verdict with no `recheck_at` is cached until the files change."""
        signature = files_signature(version_dir, marker)
        if trust_base is not None:
            signature += (trust, *((st.st_mode, st.st_uid, st.st_gid) if st else None
                                   for st in (_stat(trust_base), _stat(version_dir))))
        atomic = self.atomic(version_dir)
        key = (*signature, tags, self.verify, atomic)
        cached = self._cache.get(version_dir)
        if cached is not None and cached[0] == key:
            return cached[1]
        folder = Folder(version_dir, tags, marker, trust_base, trust, atomic, self.verify,
                        self.settle, lambda p, st, s: self._quiet(version_dir, p, st, s))
        verdict = None
        for name, check in CHECKS:
            outcome = check(folder)
            if isinstance(outcome, Wait):
                verdict = Verdict(False, signature, IncompleteModel, outcome.reason,
                                  outcome.recheck_at, check=name)
            elif isinstance(outcome, Fail):
                verdict = Verdict(False, signature, outcome.error, outcome.reason, check=name)
            if verdict is not None:
                break
        if verdict is None:
            mg = folder.meta_graph
            verdict = Verdict(True, signature, meta=MetaInfo(
                folder.tag_sets, tuple(sorted(k for k in mg.signature_def
                                              if not k.startswith("__"))), signature_io(mg)))
        if verdict.recheck_at is None:
            self._cache[version_dir] = (key, verdict)
        return verdict

    def _quiet(self, version_dir: Path, path: Path, st: os.stat_result,
               seconds: float) -> float | None:
        """None when `path` has not changed for `seconds`, else when to look again. Judged
        on our monotonic clock since we first saw it like this; the file's mtime is trusted
        for it only on a local file system (a file server's clock may be skewed)."""
        ident = _identity(st)
        local = self._local.get(st.st_dev)
        if local is None:
            local = self._local[st.st_dev] = not needs_polling(path)
        age = self.wall_clock() - st.st_mtime_ns / 1e9 if local else 0.0
        if age >= seconds:
            return None
        now = self.clock()
        seen = self._seen.setdefault(version_dir, {})
        first = seen.get(path)
        if first is None or first[0] != ident:
            seen[path] = first = (ident, now)
        if now - first[1] >= seconds:
            return None
        return min(first[1] + seconds, now + seconds - age)
