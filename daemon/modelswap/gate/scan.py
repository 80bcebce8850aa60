"""One gate job: list a model's base path and judge the versions worth judging.

Runs on the gate pool, never on the coordinator: listing, stat, parsing `saved_model.pb`
and hashing all touch the disk, and a hung mount must stall only its own model's job.
At most one job per model runs at a time, so the model's `Gate` (its caches) needs no lock.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from modelswap.config import ModelConfig, VersionPolicy
from modelswap.gate.identity import files_hash
from modelswap.gate.judge import Gate
from modelswap.gate.listing import ROLLOUT_NAME, list_versions
from modelswap.gate.verdict import Verdict


@dataclass(frozen=True)
class ScanJob:
    """What to scan. `live` versions (loading or available) need no verdict and count as
    candidates; `unloading` ones are skipped; `remembered` maps versions to the identity of
    files that failed in an earlier run (failure memory)."""

    model: ModelConfig
    serial: int
    gate: Gate
    renamed: tuple[Path, ...] = ()
    live: frozenset[int] = frozenset()
    unloading: frozenset[int] = frozenset()
    remembered: Mapping[int, str] = field(default_factory=dict)
    # ready versions that must not count as candidates: a pending retry (None), or a final
    # failure for exactly these files (their gate signature)
    excluded: Mapping[int, object | None] = field(default_factory=dict)
    timeout: float = 60.0
    pinned: frozenset[int] = frozenset()  # judged whatever the policy (a fleet rollout's)
    submitted: float = 0.0  # monotonic
    finished: threading.Event = field(default_factory=threading.Event, compare=False)


@dataclass(frozen=True)
class ScanResult:
    """The listing (None when the base path cannot be listed) and the verdicts."""

    job: ScanJob
    listing: Mapping[int, Path] | None
    verdicts: Mapping[int, Verdict] = field(default_factory=dict)
    sizes: Mapping[int, int] = field(default_factory=dict)  # bytes on disk of ready versions
    remembered: frozenset[int] = frozenset()  # versions whose files match a remembered failure
    warnings: tuple[str, ...] = ()
    error: str | None = None  # why the base path could not be listed, or the job expired
    slow: bool = False  # the job ran past its time limit and was abandoned
    rollout: bytes | None = None  # the fleet rollout file beside the versions, if any


def size_on_disk(version_dir: Path) -> int:
    """Bytes of saved_model.pb and variables/ (what a first load is estimated to take)."""
    total = 0
    for name in ("saved_model.pb", "saved_model.pbtxt"):
        with contextlib.suppress(OSError):
            total += (version_dir / name).stat().st_size
    with contextlib.suppress(OSError), os.scandir(version_dir / "variables") as entries:
        total += sum(e.stat().st_size for e in entries if e.is_file())
    return total


def wanted_on_disk(on_disk: Iterable[int], policy: VersionPolicy,
                   labels: Mapping[str, int] | None = None) -> list[int]:
    """Versions worth judging, newest first: the policy's reach plus labelled versions.

    For `latest N` every version is a potential candidate (older ones become candidates
    when newer ones fail), so `scan` walks this list newest first and stops once it has
    enough ready ones.
    """
    versions = sorted(set(on_disk), reverse=True)
    if policy.kind == "specific":
        keep = set(policy.specific) | set((labels or {}).values())
        return [v for v in versions if v in keep]
    return versions


def scan(job: ScanJob) -> ScanResult:
    """List the base path, then judge versions newest first; for `latest: N` stop once N
    candidates are found and no labelled version lies further down."""
    try:
        return _scan(job)
    finally:
        job.finished.set()


def _scan(job: ScanJob) -> ScanResult:
    cfg, gate = job.model, job.gate
    for path in job.renamed:
        gate.note_renamed(path)
    try:
        listing, warnings = list_versions(cfg.base_path)
    except OSError as exc:
        return ScanResult(job, None, error=exc.strerror or str(exc))
    policy, labelled = cfg.version_policy, set(cfg.labels.values()) | job.pinned
    verdicts: dict[int, Verdict] = {}
    sizes: dict[int, int] = {}
    remembered: set[int] = set()
    found = 0
    for number in wanted_on_disk(listing, policy, {
            **cfg.labels, **{f"pinned-{n}": n for n in job.pinned}}):
        if (policy.kind == "latest" and found >= policy.latest
                and all(lv > number for lv in labelled)):
            break
        if number in job.live:
            found += 1
            continue
        if number in job.unloading:
            continue
        path = listing[number]
        verdict = gate.check(path, cfg.tag_set, cfg.marker,
                             cfg.base_path if cfg.trust else None, cfg.trust)
        verdicts[number] = verdict
        if verdict.ready:
            sizes[number] = size_on_disk(path)
            failed = job.remembered.get(number)
            if failed is not None and failed == _hash(path):
                remembered.add(number)
            elif number not in job.excluded or job.excluded[number] not in (
                    None, verdict.signature):
                found += 1
    gate.forget_except(set(listing.values()))
    return ScanResult(job, listing, verdicts, sizes, frozenset(remembered), tuple(warnings),
                      rollout=_read_rollout(cfg.base_path / ROLLOUT_NAME))


ROLLOUT_MAX = 64 * 1024


def _read_rollout(path: Path) -> bytes | None:
    try:
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return b"not a regular file"  # fails to parse: reported, ignored
            return f.read(ROLLOUT_MAX + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"unreadable: {exc.strerror}".encode()


def _hash(path: Path) -> str | None:
    try:
        return files_hash(path)
    except OSError:
        return None


def expired(job: ScanJob) -> ScanResult:
    """The result of a job that ran past its time limit."""
    return ScanResult(job, None, error=f"file system slow: listing or checking took over "
                      f"{job.timeout:g}s (watch.gate_timeout)", slow=True)
