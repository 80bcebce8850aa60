"""The coordinator's records of models and versions, and what it publishes from them.

Only the coordinator thread touches these.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from modelswap.config import ModelConfig
from modelswap.core.planner import Pin, Record
from modelswap.events import ModelEvent, State, VersionStatus
from modelswap.fleet.rollout import (
    ROLLOUT_NAME,
    Rollout,
    RolloutProblem,
    member_versions,
    parse_rollout,
    serves_canary,
)
from modelswap.gate.judge import Gate
from modelswap.gate.listing import parse_version
from modelswap.gate.scan import ScanJob, ScanResult
from modelswap.gate.verdict import MetaInfo
from modelswap.handles import ModelView, Resident
from modelswap.load.job import LoadJob
from modelswap.logger import get_logger

log = get_logger("modelswap")
WAITING_LOG_EVERY = 10.0  # seconds: at most one `version_waiting` debug line per version


@dataclass
class VersionRecord:
    """The coordinator's record of one version."""

    number: int
    path: Path
    state: State = State.WAITING
    error: str | None = None
    error_type: str | None = None
    since: float = field(default_factory=time.time)  # wall clock: the last state change
    announced: bool = False  # an event was emitted for it (the first has previous=None)
    retries: int = 0
    retry_at: float | None = None
    failed_files: object | None = None  # a final failure, for these files
    served: Resident | None = None
    token: int = 0
    meta: MetaInfo | None = None
    files: object | None = None  # gate signature of the files it was loaded from
    durations: dict[str, float] = field(default_factory=dict)
    ready_at: float | None = None  # monotonic: when the gate first passed it
    identity: str | None = None  # content identity of the loaded files (for reuse)
    waiting_logged: float = -WAITING_LOG_EVERY  # monotonic: the last `version_waiting` line

    def transition(self, model: str, state: State, error: str | None = None,
                   error_type: str | None = None) -> ModelEvent | None:
        """Move to `state`; the event to publish, or None when the state is unchanged (a
        new reason alone, e.g. copy progress, updates the status without an event)."""
        if self.announced and state is self.state and error_type == self.error_type:
            self.error = error
            return None
        previous = self.state if self.announced else None
        self.state, self.error, self.error_type = state, error, error_type
        self.announced = True
        self.since = time.time()
        durations = tuple(self.durations.items()) if state is State.AVAILABLE else ()
        return ModelEvent(model, self.number, state, previous, self.path, error, error_type,
                          durations)

    def next_retry(self, limit: int, interval: float, now: float) -> float | None:
        """Count one more retry and set `retry_at` (the interval doubles each time); the
        delay, or None once `limit` retries were made."""
        if self.retries >= limit:
            return None
        self.retries += 1
        delay = interval * float(2 ** (self.retries - 1))
        self.retry_at = now + delay
        return delay

    def timed(self, stages: dict[str, float], first_event: float | None, now: float) -> None:
        """Keep a load's stage durations, plus ready→available and, from the version's first
        sighting, event→available and the gate's wait (reported with AVAILABLE)."""
        self.durations = dict(stages)
        if self.ready_at is not None:
            self.durations["ready_to_available"] = now - self.ready_at
        if first_event is not None:
            self.durations["event_to_available"] = now - first_event
            if self.ready_at is not None:
                self.durations["gate_wait"] = max(self.ready_at - first_event, 0.0)

    def as_planned(self, outgoing: bool = False) -> Record:
        return Record(self.number, self.state, self.path, self.failed_files, self.retry_at,
                      self.meta, outgoing)


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
    """The coordinator's record of one model: its versions and its gate jobs."""

    config: ModelConfig
    gate: Gate
    versions: dict[int, VersionRecord] = field(default_factory=dict)
    # versions loaded under a previous base_path/tags/signatures: they serve until a
    # version under the new settings is available, then retire
    outgoing: list[VersionRecord] = field(default_factory=list)
    aspired: frozenset[int] = frozenset()
    scan: ScanResult | None = None  # the last gate job's result
    scanning: bool = False  # a gate job is running
    scan_wanted: bool = True  # look at the disk again once the running job is done
    serial: int = 0  # of the last gate job submitted
    renamed: list[Path] = field(default_factory=list)  # rename targets since the last job
    first_event: dict[int, float] = field(default_factory=dict)  # version → first sighting
    base_ok: bool = True
    warned: frozenset[str] = frozenset()
    growth: int | None = None  # bytes the last load of this model added to the RSS
    last_hint: float = float("-inf")  # monotonic time of the last watcher hint
    rollout: Rollout | None = None  # the fleet rollout beside the versions (last good one)
    rollout_problem: str | None = None  # why the rollout file there now is ignored
    pin: Pin | None = None  # what the rollout asks of this member
    default: int | None = None  # acquire(name)'s version, when a rollout says so
    first_ready: dict[int, float] = field(default_factory=dict)  # version → gate first passed
    stuck: ScanJob | None = None  # an abandoned gate job (hung mount) not returned yet

    def scan_job(self, remembered: Mapping[int, str], timeout: float, now: float) -> ScanJob:
        """The next gate job for this model (and mark it as running)."""
        self.scan_wanted, self.scanning, self.serial = False, True, self.serial + 1
        excluded: dict[int, object | None] = {}
        for n, v in self.versions.items():
            if v.state in (State.ERROR, State.WAITING) and v.failed_files is not None:
                excluded[n] = v.failed_files
            elif v.state is State.ERROR and v.retry_at is not None and v.retry_at > now:
                excluded[n] = None
        renamed, self.renamed = tuple(self.renamed), []
        versions = self.versions
        return ScanJob(
            self.config, self.serial, self.gate, renamed,
            live=frozenset(n for n, v in versions.items()
                           if v.state in (State.LOADING, State.AVAILABLE)),
            unloading=frozenset(n for n, v in versions.items() if v.state is State.UNLOADING),
            remembered=remembered, excluded=excluded, timeout=timeout, submitted=now,
            pinned=frozenset(n for n in (self.rollout.stable, self.rollout.canary) if n)
            if self.rollout is not None else frozenset())

    def accept(self, result: ScanResult, now: float) -> bool:
        """Take a gate job's listing (logging what changed about the base path); True when
        it differs from the previous one although no hint came since that one was taken:
        a change no event reported."""
        name, path = self.config.name, str(self.config.base_path)
        before = self.scan.listing if self.scan is not None else None
        if self.scan is not None and self.last_hint >= self.scan.job.submitted:
            before = None  # events told of changes since: a difference is no surprise
        if result.listing is None:
            if self.base_ok:
                log.warning("base_path_unavailable", model=name, path=path, error=result.error,
                            serving=sorted(n for n, v in self.versions.items()
                                           if v.state is State.AVAILABLE))
            self.base_ok = False
            if self.scan is None:
                self.scan = result
            return False
        if not self.base_ok:
            log.info("base_path_back", model=name, path=path)
        self.base_ok = True
        for text in set(result.warnings) - self.warned:
            log.warning("duplicate_version_folders", model=name, detail=text)
        self.warned = frozenset(result.warnings)
        for seen in (self.first_event, self.first_ready):
            for number in [n for n in seen if n not in result.listing]:
                del seen[number]
        for number, verdict in result.verdicts.items():
            if verdict.ready:
                self.first_ready.setdefault(number, now)
        self.scan = result
        return before is not None and dict(before) != dict(result.listing)

    def follow_rollout(self, data: bytes | None, listing: Mapping[int, Path],
                       member: str) -> bool:
        """Take the rollout file's bytes (None: there is none); keep the last good rollout
        when the file is invalid (logged once). Sets `pin`; True when the rollout names a
        version the last gate job did not judge (look again)."""
        name = self.config.name
        source = str(self.config.base_path / ROLLOUT_NAME)
        found = parse_rollout(data, source) if data is not None else None
        if isinstance(found, RolloutProblem):
            if str(found) != self.rollout_problem:
                log.error("rollout_invalid", model=name, problem=found.reason, path=source,
                          keeping=self.rollout.describe() if self.rollout else "no rollout")
            self.rollout_problem = str(found)
        else:
            self.rollout_problem = None
            if found != self.rollout:
                canary = found is not None and serves_canary(member, name, found.percent)
                log.info("rollout", model=name, member=member, canary_member=canary,
                         rollout=found.describe() if found else None)
            self.rollout = found
        if self.rollout is None:
            self.pin = None
            return False
        chosen = member_versions(self.rollout, listing,
                                 serves_canary(member, name, self.rollout.percent))
        assert chosen is not None
        self.pin = Pin(chosen.wanted, chosen.default, dict(chosen.labels))
        judged = self.scan.job.pinned if self.scan is not None else frozenset()
        return not chosen.wanted <= judged

    def load_job(self, v: VersionRecord, timeout: float, *, reuse: bool,
                 identify_failure: bool) -> LoadJob:
        """The load of `v` with this model's settings; `reuse`: a loaded version with the
        same content identity is published again instead of loading twice."""
        cfg = self.config
        twins = tuple((u.identity, u.number) for u in self.records()
                      if u.state is State.AVAILABLE and u.identity is not None)
        return LoadJob(cfg.name, v.number, v.path, v.token, cfg.tag_set, tuple(cfg.signatures),
                       cfg.warmup, cfg.warmup_timeout, reuse=twins if reuse else None,
                       load_timeout=timeout, identify_failure=identify_failure,
                       load_options=cfg.load_options)

    def could_load_beside(self) -> bool:
        """A version is available and the last gate job passed one not loaded yet."""
        verdicts = self.scan.verdicts if self.scan is not None else {}
        return any(v.state is State.AVAILABLE for v in self.records()) and any(
            verdict.ready and (n not in self.versions
                               or self.versions[n].state in (State.WAITING, State.ERROR))
            for n, verdict in verdicts.items())

    def estimates(self, factor: float) -> dict[int, int]:
        """Bytes a load of each ready version is expected to take: what this model's last
        load took, or (a first load) its size on disk x `factor`."""
        sizes = self.scan.sizes if self.scan is not None else {}
        return {n: self.growth if self.growth is not None else int(size * factor)
                for n, size in sizes.items()}

    def records(self) -> list[VersionRecord]:
        """Every version record, current and outgoing."""
        return [*self.versions.values(), *self.outgoing]

    def serving(self, number: int) -> Resident | None:
        """The model of version `number` while it is AVAILABLE (a load may reuse it)."""
        return next((u.served for u in self.records() if u.number == number
                     and u.state is State.AVAILABLE), None)

    def find(self, served: Resident) -> VersionRecord | None:
        """The record holding `served`."""
        v = self.versions.get(served.version)
        if v is not None and v.served is served:
            return v
        return next((o for o in self.outgoing if o.served is served), None)

    def view(self) -> ModelView:
        """The published versions, for the snapshot `acquire()` reads."""
        versions = {v.number: v.served for v in [*self.outgoing, *self.versions.values()]
                    if v.state is State.AVAILABLE and v.served is not None}
        named = {**self.config.labels, **(self.pin.labels if self.pin is not None else {})}
        labels = {label: versions[n] for label, n in named.items() if n in versions}
        default = self.default if self.default in versions else max(versions, default=None)
        return ModelView(MappingProxyType(versions), MappingProxyType(labels),
                         versions[default] if default is not None else None)

    def judged_nothing(self) -> bool:
        """Its last gate job listed the base path and every version it visited was live."""
        return self.scan is not None and self.scan.listing is not None and not self.scan.verdicts

    def settled(self) -> bool:
        """Judged, and no version waits to be complete (poll mode hints it only on change)."""
        return self.scan is not None and all(v.state is not State.WAITING
                                             for v in self.versions.values())

    def status(self) -> tuple[VersionStatus, ...]:
        """Every tracked version, newest first."""
        by_version: dict[int, list[str]] = {}
        for label, n in self.config.labels.items():
            by_version.setdefault(n, []).append(label)
        records = [(v, tuple(sorted(by_version.get(n, ()))))
                   for n, v in sorted(self.versions.items(), reverse=True)]
        records += [(v, ()) for v in self.outgoing]
        return tuple(VersionStatus(v.number, v.state, v.path, v.error, v.error_type, v.since,
                                   v.retries, labels) for v, labels in records if v.announced)


@dataclass
class Counters:
    """Monotonic counts for metrics."""

    events: int = 0  # filesystem hints received
    rescans: int = 0  # periodic full rescans
    rescan_changes: int = 0  # changes on disk that a rescan found and no event reported
    swaps: int = 0  # versions published
    step_failures: int = 0  # coordinator steps that raised (logged; the loop went on)
    slow_scans: int = 0  # gate jobs abandoned after watch.gate_timeout


def version_of(base: Path, path: Path) -> int | None:
    """The version number `path` lies in under `base`, if any."""
    try:
        parts = path.relative_to(base).parts
    except ValueError:
        return None
    return parse_version(parts[0]) if parts else None
