"""The planner: what to do next for one model, from what is known about it now.

Pure, like TF Serving's `AspiredVersionPolicy::GetNextAction`: no I/O, no threads, no
TensorFlow, no clock (time is an argument). Given the same situation it returns the same
plan, so the coordinator may run it as often as it likes; every branch is tested by table
(tests/core/test_planner.py).

The rules (DESIGN.md): serve the aspired versions (the version policy's pick among the
candidates, plus labelled ones); never unpublish a serving version until a successor is
available, unless `swap_policy: resource` (or the memory fallback) asks for the gap; a
final failure stays final until the version's files change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from modelswap.config import ModelConfig
from modelswap.core.policy import aspired_versions
from modelswap.errors import InsufficientMemory
from modelswap.events import State
from modelswap.gate.verdict import MetaInfo, Verdict
from modelswap.load.contract import violations

LIVE = (State.LOADING, State.AVAILABLE)
MEMORY_RECHECK = 5.0  # seconds between looks at memory headroom for a held version


@dataclass(frozen=True)
class Record:
    """The planner's view of one tracked version."""

    number: int
    state: State
    path: Path
    failed_files: object | None = None  # a final failure, for these files (gate signature)
    retry_at: float | None = None  # a pending retry (monotonic)
    meta: MetaInfo | None = None  # of the files it loaded or was judged from
    outgoing: bool = False  # loaded under a previous config; retires once a successor serves


@dataclass(frozen=True)
class Pin:
    """A fleet rollout's choice for this member (fleet/rollout.py): the versions to keep
    loaded in place of the version policy's pick, the default, and rollout labels."""

    wanted: frozenset[int]
    default: int | None = None
    labels: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Situation:
    """Everything the planner looks at for one model."""

    config: ModelConfig
    records: tuple[Record, ...]
    listing: Mapping[int, Path] | None  # the last listing; None: the base path is unreadable
    verdicts: Mapping[int, Verdict] = field(default_factory=dict)
    # ready, but failed with these same files in an earlier run: (error_type, error)
    remembered: Mapping[int, tuple[str, str]] = field(default_factory=dict)
    now: float = 0.0
    swap_policy: str = "availability"
    memory_policy: str = "refuse"
    estimates: Mapping[int, int] = field(default_factory=dict)  # bytes a load would take
    headroom: int | None = None  # bytes the process may still use; None: unknown
    pin: Pin | None = None  # a fleet rollout for this member
    not_before: Mapping[int, float] = field(default_factory=dict)  # staggered swaps


@dataclass(frozen=True)
class Mark:
    """Set a version's state to WAITING or ERROR (tracking it if new). `final_for`: the
    files this error is final for; `retry_at`: when it may be tried again."""

    number: int
    path: Path
    state: State
    reason: str | None = None
    error_type: str | None = None
    final_for: object | None = None
    retry_at: float | None = None


@dataclass(frozen=True)
class Load:
    """Start loading a version judged ready from `verdict`."""

    number: int
    path: Path
    verdict: Verdict


@dataclass(frozen=True)
class Retire:
    """Unpublish an available version (unloaded once its last handle is released)."""

    number: int
    outgoing: bool = False


@dataclass(frozen=True)
class Forget:
    """Stop tracking a waiting or failed version whose folder is gone."""

    number: int


Action = Mark | Load | Retire | Forget


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]
    aspired: frozenset[int]
    recheck_at: float | None = None  # plan again then, even if nothing else happens
    default: int | None = None  # what acquire(name) returns, when not the newest


def plan(s: Situation) -> Plan:
    """The next actions for the model in `s` (see the module docstring)."""
    cfg = s.config
    current = {r.number: r for r in s.records if not r.outgoing}
    outgoing = [r for r in s.records if r.outgoing]
    if s.listing is None:  # nothing is known about the disk: change nothing
        return Plan((), frozenset(n for n, r in current.items() if r.state in LIVE))
    listing = s.listing
    actions: list[Action] = []
    rechecks: list[float] = []

    for n, rec in current.items():
        if listing.get(n) != rec.path and rec.state in (State.WAITING, State.ERROR):
            actions.append(Forget(n))

    candidates = {n for n, r in current.items() if r.state in LIVE and listing.get(n) == r.path}
    for n, v in sorted(s.verdicts.items()):
        r = current.get(n)
        path = listing.get(n)
        if path is None or (r is not None and r.state not in (State.WAITING, State.ERROR)):
            continue  # gone, or a verdict older than the version's load
        if v.waiting:
            actions.append(Mark(n, path, State.WAITING, v.reason, "IncompleteModel"))
            if v.recheck_at is not None:
                rechecks.append(v.recheck_at)
        elif not v.ready:
            actions.append(Mark(n, path, State.ERROR, v.reason,
                                v.error.__name__ if v.error else "LoadError", v.signature))
        elif n in s.remembered and (r is None or r.failed_files != v.signature):
            error_type, error = s.remembered[n]
            actions.append(Mark(n, path, State.ERROR, f"{error} (remembered from an earlier "
                                "run; retried when its files change)", error_type, v.signature))
        elif r is not None and (r.failed_files == v.signature or (
                r.state is State.ERROR and r.failed_files is None
                and r.retry_at is not None and r.retry_at > s.now)):
            if r.failed_files is None and r.retry_at is not None:
                rechecks.append(r.retry_at)
        else:
            candidates.add(n)

    available = {n for n, r in current.items() if r.state is State.AVAILABLE}
    loading = {n for n, r in current.items() if r.state is State.LOADING}
    while True:
        aspired = _aspired(cfg, s.pin, candidates)
        to_load = aspired - available - loading
        broken = _contract_breaks(cfg, s, to_load)
        if not broken:
            break
        for n, reason in broken.items():
            actions.append(Mark(n, listing[n], State.ERROR, reason, "SignatureMismatch",
                                s.verdicts[n].signature))
        candidates -= set(broken)

    if to_load and available:  # staggered swaps: a fleet never loads a version all at once
        for n in sorted(to_load):
            at = s.not_before.get(n, 0.0)
            if at > s.now:
                actions.append(Mark(n, listing[n], State.WAITING, f"waiting for its turn "
                                    f"(swap_jitter): loads in {at - s.now:.0f}s"))
                rechecks.append(at)
        to_load = frozenset(n for n in to_load if s.not_before.get(n, 0.0) <= s.now)

    stale = [current[n] for n in sorted(available - aspired)]
    stale += [r for r in outgoing if r.state is State.AVAILABLE]
    unloading = [r for r in s.records if r.state is State.UNLOADING]
    gap = s.swap_policy == "resource"
    if to_load and not gap and (stale or available) and s.memory_policy != "ignore":
        need = sum(s.estimates.get(n, 0) for n in to_load)
        if s.headroom is not None and need > s.headroom:
            if s.memory_policy == "refuse":
                retry = s.now + MEMORY_RECHECK
                rechecks.append(retry)
                for n in sorted(to_load):
                    actions.append(Mark(
                        n, listing[n], State.ERROR,
                        f"not enough memory to load it beside the served version: needs "
                        f"~{_mb(need)} MB, {_mb(s.headroom)} MB free (memory_policy: refuse; "
                        f"loads once memory allows)", InsufficientMemory.__name__, retry_at=retry))
                to_load = frozenset()
            else:  # fallback: this swap frees the old version first, with a gap
                gap = True

    if gap and to_load and (stale or unloading):
        actions += [Retire(r.number, r.outgoing) for r in stale]
        waiting_for = sorted({r.number for r in [*stale, *unloading]})
        for n in sorted(to_load):
            actions.append(Mark(n, listing[n], State.WAITING,
                                f"waiting for version(s) {waiting_for} to unload first "
                                f"(swap_policy: resource)"))
        to_load = frozenset()
    elif stale and aspired & available and not aspired & (loading | to_load):
        actions += [Retire(r.number, r.outgoing) for r in stale]

    actions += [Load(n, listing[n], s.verdicts[n]) for n in sorted(to_load, reverse=True)]
    default = s.pin.default if s.pin is not None else None
    return Plan(tuple(actions), aspired, min(rechecks, default=None), default)


def _aspired(cfg: ModelConfig, pin: Pin | None, candidates: set[int]) -> frozenset[int]:
    """The version policy's pick among the candidates, plus labelled ones; under a fleet
    rollout the rollout's versions replace the policy's pick."""
    if pin is None:
        return aspired_versions(candidates, cfg.version_policy, cfg.labels)
    return frozenset(candidates & (pin.wanted | set(cfg.labels.values())))


def _contract_breaks(cfg: ModelConfig, s: Situation, numbers: frozenset[int]) -> dict[int, str]:
    """The versions in `numbers` that break the served version's signature contract, with
    the differences. Versions older than the served one are rollbacks: not checked."""
    served = max((r for r in s.records if r.state is State.AVAILABLE and r.meta is not None),
                 key=lambda r: r.number, default=None)
    if served is None or served.meta is None or cfg.contract == "off":
        return {}
    broken = {}
    for n in sorted(numbers):
        meta = s.verdicts[n].meta
        if n < served.number or meta is None:
            continue
        found = violations(served.meta.signature_io, meta.signature_io, cfg.contract)
        if found:
            broken[n] = (f"breaks the {cfg.contract!r} contract of served version "
                         f"{served.number}: " + " | ".join(found))
    return broken


def _mb(n: int) -> int:
    return round(n / 2**20)
