"""The coordinator's records of models and versions, and what it publishes from them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from modelswap.config import ModelConfig
from modelswap.events import ModelEvent, State, VersionStatus
from modelswap.gate.checks import MetaInfo
from modelswap.gate.listing import list_versions, parse_version
from modelswap.handles import ModelView, Served
from modelswap.load.contract import violations
from modelswap.logger import get_logger

log = get_logger("modelswap")


@dataclass
class VersionRecord:
    """The coordinator's record of one version (only the coordinator thread touches it)."""

    number: int
    path: Path
    state: State = State.WAITING
    error: str | None = None
    error_type: str | None = None
    since: float = field(default_factory=time.time)
    retries: int = 0
    retry_at: float | None = None
    failed_signature: tuple[object, ...] | None = None
    served: Served | None = None
    token: int = 0
    meta: MetaInfo | None = None
    durations: dict[str, float] = field(default_factory=dict)
    ready_at: float | None = None  # monotonic: when the gate first passed it
    signature: tuple[object, ...] | None = None  # the files the gate last passed
    identity: str | None = None  # content identity of the loaded files (for reuse)

    def transition(self, model: str, state: State, error: str | None = None,
                   error_type: str | None = None) -> ModelEvent | None:
        """Move to `state`; the event to publish, or None when nothing changed."""
        if (self.state, self.error, self.error_type) == (state, error, error_type):
            return None
        previous = self.state
        self.state, self.error, self.error_type = state, error, error_type
        self.since = time.time()
        durations = tuple(self.durations.items()) if state is State.AVAILABLE else ()
        return ModelEvent(model, self.number, state, previous, self.path, error, error_type,
                          durations)


def log_event(event: ModelEvent) -> None:
    """One structlog `version_state` event per state change."""
    fields: dict[str, Any] = {"model": event.model, "version": event.version,
                              "state": event.state.value, "path": str(event.path),
                              "previous": event.previous.value if event.previous else None}
    if event.error:
        fields.update(error_type=event.error_type, error=event.error)
    fields.update({f"{k}_s": round(s, 4) for k, s in event.durations})
    level = "warning" if event.state is State.ERROR else "info"
    getattr(log, level)("version_state", **fields)


@dataclass
class ModelRecord:
    """The coordinator's record of one model."""

    config: ModelConfig
    versions: dict[int, VersionRecord] = field(default_factory=dict)
    aspired: frozenset[int] = frozenset()
    base_ok: bool = True
    warned: frozenset[str] = frozenset()
    listed: dict[int, Path] = field(default_factory=dict)
    first_event: dict[int, float] = field(default_factory=dict)  # version → first hint
    # versions loaded under a previous base_path/tags/signatures: they serve until a
    # version under the new settings is available, then retire
    outgoing: list[VersionRecord] = field(default_factory=list)

    def relist(self) -> tuple[dict[int, Path], list[Path] | None]:
        """List the base path: (version → folder, folders gone since the last listing, or
        None when nothing changed). A missing base path lists as empty, with a warning."""
        cfg = self.config
        try:
            on_disk, warnings = list_versions(cfg.base_path)
            if not self.base_ok:
                log.info("base_path_back", model=cfg.name, path=str(cfg.base_path))
            self.base_ok = True
        except OSError as exc:
            on_disk, warnings = {}, []
            if self.base_ok:
                log.warning("base_path_unavailable", model=cfg.name, path=str(cfg.base_path),
                            error=exc.strerror or str(exc), serving=sorted(
                                n for n, v in self.versions.items()
                                if v.state is State.AVAILABLE))
            self.base_ok = False
        for text in set(warnings) - self.warned:
            log.warning("duplicate_version_folders", model=cfg.name, detail=text)
        self.warned = frozenset(warnings)
        if on_disk == self.listed:
            return on_disk, None
        gone = [path for number, path in self.listed.items() if on_disk.get(number) != path]
        for number, path in self.listed.items():
            if on_disk.get(number) != path:
                self.first_event.pop(number, None)
        self.listed = on_disk
        return on_disk, gone

    def records(self) -> list[VersionRecord]:
        """Every version record, current and outgoing."""
        return [*self.versions.values(), *self.outgoing]

    def contract_breaks(self, numbers: frozenset[int]) -> dict[int, str]:
        """The versions in `numbers` that break the served version's signature contract
        (from their parsed saved_model.pb), with the diff. Older versions are rollbacks and
        are not checked."""
        served = max((u for u in self.records()
                      if u.state is State.AVAILABLE and u.meta is not None),
                     key=lambda u: u.number, default=None)
        mode = self.config.contract
        if served is None or served.meta is None or mode == "off":
            return {}
        broken = {}
        for number in sorted(numbers):
            v = self.versions[number]
            if number < served.number or v.meta is None:
                continue
            found = violations(served.meta.signature_io, v.meta.signature_io, mode)
            if found:
                broken[number] = (f"breaks the {mode!r} contract of served version "
                                  f"{served.number}: " + " | ".join(found))
        return broken

    def find(self, served: Served) -> VersionRecord | None:
        """The record holding `served`."""
        v = self.versions.get(served.version)
        if v is not None and v.served is served:
            return v
        return next((o for o in self.outgoing if o.served is served), None)

    def view(self) -> ModelView:
        """The published versions, for the snapshot `acquire()` reads."""
        versions = {v.number: v.served for v in [*self.outgoing, *self.versions.values()]
                    if v.state is State.AVAILABLE and v.served is not None}
        labels = {label: versions[n] for label, n in self.config.labels.items()
                  if n in versions}
        return ModelView(MappingProxyType(versions), MappingProxyType(labels),
                         versions[max(versions)] if versions else None)

    def status(self) -> tuple[VersionStatus, ...]:
        """Every tracked version, newest first."""
        by_version: dict[int, list[str]] = {}
        for label, n in self.config.labels.items():
            by_version.setdefault(n, []).append(label)
        records = [(v, tuple(sorted(by_version.get(n, ()))))
                   for n, v in sorted(self.versions.items(), reverse=True)]
        records += [(v, ()) for v in self.outgoing]
        return tuple(VersionStatus(v.number, v.state, v.path, v.error, v.error_type, v.since,
                                   v.retries, labels) for v, labels in records)


@dataclass
class Counters:
    """Monotonic counts for metrics."""

    events: int = 0  # filesystem hints received
    rescans: int = 0  # periodic full rescans
    rescan_changes: int = 0  # changes on disk that a rescan found and no event reported
    swaps: int = 0  # versions published


def version_of(base: Path, path: Path) -> int | None:
    """The version number `path` lies in under `base`, if any."""
    try:
        parts = path.relative_to(base).parts
    except ValueError:
        return None
    return parse_version(parts[0]) if parts else None
