"""Each member's status object in the repository: `<base_path>/_fleet/<member>.json`.

A member writes, for the models it serves from that base path, the served version, every
version's state and error, and a heartbeat time: on change and at least every 30 s
(`StatusWriter`; `FleetReporter` runs it for a `ModelSwap`). `read_fleet` reads them back
for `modelswap fleet status` (see `modelswap.fleet.view`).
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelswap.events import State, VersionStatus
from modelswap.fleet.repo import Repository, RepositoryError
from modelswap.fleet.timefmt import iso, parse_iso
from modelswap.logger import get_logger

if TYPE_CHECKING:
    from modelswap.api import ModelSwap

__all__ = [
    "FLEET_DIR", "HEARTBEAT", "FleetReporter", "MemberStatus", "ModelReport", "StatusWriter",
    "VersionReport", "decode_status", "encode_status", "object_name", "read_fleet",
]

log = get_logger("modelswap.fleet")
FLEET_DIR = "_fleet"
HEARTBEAT = 30.0  # seconds between writes of an unchanged status
RETRY = 5.0  # seconds after a failed write before the next attempt
FORMAT = 1


@dataclass(frozen=True)
class VersionReport:
    version: int
    state: str
    since: float
    error: str | None = None
    error_type: str | None = None
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelReport:
    """`served`: the version `acquire(name)` returns now (None: none available)."""

    served: int | None
    versions: tuple[VersionReport, ...]

    @property
    def served_since(self) -> float | None:
        return next((v.since for v in self.versions if v.version == self.served), None)


@dataclass(frozen=True)
class MemberStatus:
    member: str
    host: str
    pid: int
    started: float
    heartbeat: float
    models: Mapping[str, ModelReport]


def object_name(member: str) -> str:
    """The status object of `member`, relative to the base path (ids are made file-safe)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", member)[:200].lstrip(".") or "_"
    return f"{FLEET_DIR}/{safe}.json"


def model_report(versions: Sequence[VersionStatus], served: int | None = None) -> ModelReport:
    """A model's report from `ModelSwap.status()` entries; `served` defaults to the newest
    AVAILABLE version (what `acquire(name)` returns)."""
    if served is None:
        served = max((v.version for v in versions if v.state is State.AVAILABLE), default=None)
    return ModelReport(served, tuple(
        VersionReport(v.version, v.state.value, v.since, v.error, v.error_type, tuple(v.labels))
        for v in sorted(versions, key=lambda v: -v.version) if v.state is not State.END))


def encode_status(status: MemberStatus) -> bytes:
    body = {"format": FORMAT, "member": status.member, "host": status.host,
            "pid": status.pid, "started": iso(status.started),
            "heartbeat": iso(status.heartbeat),
            "models": {name: {"served": m.served, "versions": [
                {"version": v.version, "state": v.state, "since": iso(v.since),
                 "error": v.error, "error_type": v.error_type, "labels": list(v.labels)}
                for v in m.versions]} for name, m in sorted(status.models.items())}}
    return (json.dumps(body, indent=1) + "\n").encode()


def _time(value: Any, what: str) -> float:
    when = parse_iso(value) if isinstance(value, str) else None
    if when is None:
        raise ValueError(f"{what}: not an ISO 8601 time: {value!r}")
    return when


def _opt_str(value: Any, what: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{what}: not a string")
    return value


def _int(value: Any, what: str, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what}: not an integer: {value!r}")
    return value


def _decode(body: Any) -> MemberStatus:
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise ValueError(f"not a format-{FORMAT} status object")
    models = {}
    if not isinstance(body.get("models"), dict):
        raise ValueError("models: not an object")
    for name, m in body["models"].items():
        if not isinstance(m, dict) or not isinstance(m.get("versions"), list):
            raise ValueError(f"models.{name}: not an object with versions")
        versions = []
        for v in m["versions"]:
            if not isinstance(v, dict) or not isinstance(v.get("state"), str):
                raise ValueError(f"models.{name}: a version without a state")
            labels = v.get("labels") or []
            versions.append(VersionReport(
                _int(v.get("version"), f"models.{name}.version"), v["state"],
                _time(v.get("since"), f"models.{name}.since"),
                _opt_str(v.get("error"), "error"), _opt_str(v.get("error_type"), "error_type"),
                tuple(str(label) for label in labels)))
        models[str(name)] = ModelReport(_int(m.get("served"), f"models.{name}.served",
                                             optional=True), tuple(versions))
    member = body.get("member")
    if not isinstance(member, str) or not member:
        raise ValueError("member: missing")
    return MemberStatus(member, str(body.get("host", "")), _int(body.get("pid", 0), "pid"),
                        _time(body.get("started"), "started"),
                        _time(body.get("heartbeat"), "heartbeat"), models)


def decode_status(data: bytes) -> MemberStatus | str:
    """A status object, or why it cannot be read (never raises)."""
    try:
        return _decode(json.loads(data.decode("utf-8")))
    except (UnicodeDecodeError, ValueError) as exc:
        return str(exc)


def read_fleet(repo: Repository) -> tuple[list[MemberStatus], list[str]]:
    """Every member's status under `repo`'s `_fleet/`, and one line per unreadable one.
    Raises `RepositoryError` if the folder cannot be listed."""
    members, problems = [], []
    for name in repo.names(FLEET_DIR):
        if name.startswith(".") or not name.endswith(".json"):
            continue
        rel = f"{FLEET_DIR}/{name}"
        try:
            data = repo.read(rel)
        except RepositoryError as exc:
            problems.append(str(exc))
            continue
        if data is None:
            continue  # deleted between the listing and the read
        decoded = decode_status(data)
        if isinstance(decoded, str):
            problems.append(f"{repo.where(rel)}: unreadable status object: {decoded}")
        else:
            members.append(decoded)
    return sorted(members, key=lambda m: m.member), problems


class StatusWriter:
    """Writes one member's status object to one repository: on change (at most every
    `min_gap` seconds), and every `interval` seconds as a heartbeat."""

    def __init__(self, repo: Repository, member: str, *, interval: float = HEARTBEAT,
                 min_gap: float = 1.0, clock: Callable[[], float] = time.time,
                 started: float | None = None) -> None:
        self.repo, self.member = repo, member
        self.interval, self.min_gap, self._clock = interval, min_gap, clock
        self.started = clock() if started is None else started
        self.host, self.pid = socket.gethostname(), os.getpid()
        self._last: Mapping[str, ModelReport] | None = None
        self._last_write: float | None = None
        self._failing = False
        self._retry_at = 0.0  # after a failed write, no new attempt before this

    def due(self) -> float:
        """When the next write is due: now if nothing was written yet, then the heartbeat;
        never before the retry time of a failed write."""
        due = self._clock() if self._last_write is None else self._last_write + self.interval
        return max(due, self._retry_at)

    def offer(self, status: Mapping[str, Sequence[VersionStatus]],
              served: Mapping[str, int | None] | None = None) -> bool:
        """Write the status if it changed or a heartbeat is due; True if written. A failed
        write is logged (once until it works again) and retried at the next offer."""
        now = self._clock()
        if now < self._retry_at:
            return False
        models = {name: model_report(versions, (served or {}).get(name))
                  for name, versions in status.items()}
        if self._last_write is not None:
            elapsed = now - self._last_write
            changed = models != self._last
            if elapsed < self.interval and not (changed and elapsed >= self.min_gap):
                return False
        body = encode_status(MemberStatus(self.member, self.host, self.pid, self.started,
                                          now, models))
        try:
            self.repo.write(object_name(self.member), body)
        except RepositoryError as exc:
            if not self._failing:
                log.warning("fleet_status_write_failed", member=self.member, error=str(exc))
            self._failing = True
            self._retry_at = now + RETRY
            return False
        self._failing = False
        self._last, self._last_write = models, now
        return True

    def remove(self) -> None:
        """Delete the status object (a member leaving the fleet on purpose)."""
        try:
            self.repo.delete(object_name(self.member))
        except RepositoryError as exc:
            log.warning("fleet_status_remove_failed", member=self.member, error=str(exc))


class FleetReporter:
    """Keeps a `ModelSwap`'s status objects current: one per base path (the models served
    from it), written on every state change and every `interval` seconds; `stop()`
    removes them. `targets` maps model name → repository (default: its `base_path`)."""

    def __init__(self, swap: ModelSwap, member: str | None = None, *,
                 targets: Mapping[str, str | os.PathLike[str]] | None = None,
                 interval: float = HEARTBEAT, min_gap: float = 1.0) -> None:
        self.swap = swap
        self.member = member or swap.member
        where = dict(targets) if targets is not None else {
            m.name: m.source_url or m.base_path for m in swap.config.models}
        groups: dict[str, list[str]] = {}
        for name, target in where.items():
            groups.setdefault(os.fspath(target), []).append(name)
        self._writers = [(StatusWriter(Repository(target), self.member, interval=interval,
                                       min_gap=min_gap), names)
                         for target, names in sorted(groups.items())]
        self._wake = threading.Event()
        self._halt = threading.Event()
        self._unsubscribe: Callable[[], None] | None = None
        self._thread = threading.Thread(target=self._run, name="modelswap-fleet", daemon=True)

    def start(self) -> FleetReporter:
        self._unsubscribe = self.swap.subscribe(lambda _event: self._wake.set())
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._halt.is_set():
            status = self.swap.status()
            for writer, names in self._writers:
                writer.offer({n: status.get(n, ()) for n in names},
                             {n: self._served(n) for n in names})
            due = min((w.due() for w, _ in self._writers), default=time.time() + HEARTBEAT)
            gap = min((w.min_gap for w, _ in self._writers), default=1.0)
            self._wake.wait(max(due - time.time(), 0.05))
            if self._wake.is_set() and not self._halt.is_set():
                self._halt.wait(gap)  # let a burst of changes settle into one write
            self._wake.clear()

    def _served(self, name: str) -> int | None:
        """The version `acquire(name)` returns now: under a rollout, the member's default
        (a canary member's canary may be older than its stable), not the newest."""
        try:
            with self.swap.acquire(name) as served:
                return served.version
        except LookupError:
            return None

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._halt.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        for writer, _ in self._writers:
            writer.remove()
