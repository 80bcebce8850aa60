"""What a `Mirror` knows about each remote version, and the snapshots `status()` returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .download import Plan

__all__ = ["MirrorStatus", "Record", "RemoteVersion", "VersionState"]

VersionState = Literal["listed", "incomplete", "downloading", "mirrored", "failed"]
"""listed: complete in the store, not wanted (or not yet fetched); incomplete: waiting for
files (reason); downloading: bytes so far; mirrored: in the cache; failed: error (reason)."""


@dataclass(frozen=True)
class RemoteVersion:
    version: int
    state: VersionState
    reason: str | None = None
    bytes_done: int = 0
    bytes_total: int = 0
    attempts: int = 0
    in_store: bool = True


@dataclass(frozen=True)
class MirrorStatus:
    """One model's mirror. `reachable` is None before the first listing; `error` is the
    last store error (redacted), `error_kind` "refused", "unreachable", "not_found"…"""

    model: str
    url: str
    reachable: bool | None
    error: str | None
    error_kind: str | None
    consecutive_failures: int
    last_listed: float | None
    versions: tuple[RemoteVersion, ...]
    counters: dict[str, int] = field(default_factory=dict)

    def version(self, n: int) -> RemoteVersion | None:
        return next((v for v in self.versions if v.version == n), None)


@dataclass
class Record:
    """Mutable, owned by the Mirror under its lock."""

    version: int
    state: VersionState = "listed"
    reason: str | None = None
    signature: str | None = None
    plan: Plan | None = None
    bytes_done: int = 0
    attempts: int = 0
    retry_at: float = 0.0  # a failed download is retried from then on
    recheck_at: float = 0.0  # an unchanged incomplete/failed version is re-listed from then on
    stale: int = 0  # listings in a row that found it unchanged
    in_store: bool = True

    def snapshot(self) -> RemoteVersion:
        total = self.plan.total_bytes if self.plan else 0
        return RemoteVersion(self.version, self.state, self.reason, self.bytes_done, total,
                             self.attempts, self.in_store)
