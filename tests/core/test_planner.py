"""The planner, by table: version policy x swap policy x labels x failures x memory.

Pure logic: no TensorFlow, no watchdog, no threads, no files (paths are only names).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from modelswap.config import ModelConfig
from modelswap.core.planner import (
    Forget,
    Load,
    Mark,
    Pin,
    Plan,
    Record,
    Retire,
    Situation,
    plan,
)
from modelswap.errors import IncompleteModel, TagMismatch
from modelswap.events import State
from modelswap.gate.verdict import MetaInfo, Verdict
from modelswap.load.contract import SignatureIO, TensorMeta

BASE = Path("/models/m")
W, L, A, U, E = State.WAITING, State.LOADING, State.AVAILABLE, State.UNLOADING, State.ERROR
X_FLOAT = (("serving_default", SignatureIO((("x", TensorMeta("float32", (-1, 1))),), ())),)
X_INT = (("serving_default", SignatureIO((("x", TensorMeta("int32", (-1, 1))),), ())),)


def cfg(**kw: Any) -> ModelConfig:
    return ModelConfig(name="m", base_path=BASE, **kw)


def ready(files: object = "f", io: Any = X_FLOAT) -> Verdict:
    return Verdict(True, (files,), meta=MetaInfo((frozenset({"serve"}),), ("serving_default",),
                                                 io))


def waiting(reason: str = "copying", at: float | None = None) -> Verdict:
    return Verdict(False, ("w",), IncompleteModel, reason, at)


def bad(files: object = "bad") -> Verdict:
    return Verdict(False, (files,), TagMismatch, "no MetaGraph has tags ['serve']")


def rec(n: int, state: State, **kw: Any) -> Record:
    return Record(n, state, BASE / str(n), **kw)


@dataclass
class Case:
    id: str
    records: tuple[Record, ...] = ()
    on_disk: tuple[int, ...] = ()
    verdicts: dict[int, Verdict] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    situation: dict[str, Any] = field(default_factory=dict)
    loads: list[int] = field(default_factory=list)
    retires: list[int] = field(default_factory=list)
    marks: dict[int, tuple[State, str | None]] = field(default_factory=dict)  # → state, type
    forgets: list[int] = field(default_factory=list)
    aspired: set[int] | None = None

    def run(self) -> Plan:
        listing = {n: BASE / str(n) for n in self.on_disk}
        return plan(Situation(cfg(**self.config), self.records, listing, self.verdicts,
                              **self.situation))


CASES = [
    # -- start-up and publishes ----------------------------------------------------------
    Case("first version loads", on_disk=(1,), verdicts={1: ready()}, loads=[1], aspired={1}),
    Case("empty base path: nothing", aspired=set()),
    Case("new version loads beside the served one (availability)",
         records=(rec(1, A),), on_disk=(1, 2), verdicts={2: ready()}, loads=[2], aspired={2}),
    Case("successor available: the old version retires",
         records=(rec(1, A), rec(2, A)), on_disk=(1, 2), retires=[1], aspired={2}),
    Case("successor still loading: the old version serves on",
         records=(rec(1, A), rec(2, L)), on_disk=(1, 2), aspired={2}),
    Case("burst of versions: only the newest loads",
         records=(rec(1, A),), on_disk=tuple(range(1, 12)), verdicts={11: ready()},
         loads=[11], aspired={11}),
    Case("incomplete version waits, the old serves",
         records=(rec(1, A),), on_disk=(1, 2), verdicts={2: waiting("variables missing")},
         marks={2: (W, "IncompleteModel")}, aspired={1}),
    # -- version policies ------------------------------------------------------------------
    Case("latest 2 loads the two newest", config={"version_policy": {"latest": 2}},
         on_disk=(1, 2, 3), verdicts={3: ready(), 2: ready()}, loads=[3, 2], aspired={2, 3}),
    Case("all loads every ready version", config={"version_policy": "all"},
         on_disk=(1, 2), verdicts={1: ready(), 2: ready(), 3: ready()}, loads=[2, 1],
         aspired={1, 2}),
    Case("specific serves only the listed version",
         config={"version_policy": {"specific": [1]}}, on_disk=(1, 2),
         verdicts={1: ready()}, loads=[1], aspired={1}),
    Case("specific: a newer available version retires once the pinned one serves",
         config={"version_policy": {"specific": [1]}}, records=(rec(1, A), rec(2, A)),
         on_disk=(1, 2), retires=[2], aspired={1}),
    # -- labels ----------------------------------------------------------------------------
    Case("a labelled older version is served too", config={"labels": {"stable": 1}},
         records=(rec(2, A),), on_disk=(1, 2), verdicts={1: ready()}, loads=[1],
         aspired={1, 2}),
    Case("a label on a missing version changes nothing", config={"labels": {"gone": 7}},
         records=(rec(2, A),), on_disk=(2,), aspired={2}),
    # -- failures ---------------------------------------------------------------------------
    Case("newest broken at start-up: falls back to the older one",
         on_disk=(1, 2), verdicts={2: bad(), 1: ready()}, marks={2: (E, "TagMismatch")},
         loads=[1], aspired={1}),
    Case("final error stays final for the same files",
         records=(rec(1, A), rec(2, E, failed_files=("f",))), on_disk=(1, 2),
         verdicts={2: ready("f")}, aspired={1}),
    Case("ERROR then fixed: new files are loaded",
         records=(rec(1, A), rec(2, E, failed_files=("old",))), on_disk=(1, 2),
         verdicts={2: ready("new")}, loads=[2], aspired={2}),
    Case("transient error waits for its retry time",
         records=(rec(1, A), rec(2, E, retry_at=50.0)), on_disk=(1, 2),
         verdicts={2: ready()}, situation={"now": 10.0}, aspired={1}),
    Case("transient error retried once its time has come",
         records=(rec(1, A), rec(2, E, retry_at=5.0)), on_disk=(1, 2),
         verdicts={2: ready()}, situation={"now": 10.0}, loads=[2], aspired={2}),
    Case("remembered failure from an earlier run: ERROR without a load",
         on_disk=(1, 2), verdicts={2: ready(), 1: ready()},
         situation={"remembered": {2: ("LoadError", "checksum")}},
         marks={2: (E, "LoadError")}, loads=[1], aspired={1}),
    Case("contract break: refused, the old version serves",
         records=(rec(1, A, meta=ready().meta),), on_disk=(1, 2),
         verdicts={2: ready(io=X_INT)}, marks={2: (E, "SignatureMismatch")}, aspired={1}),
    Case("contract off: the new signature loads", config={"contract": "off"},
         records=(rec(1, A, meta=ready().meta),), on_disk=(1, 2),
         verdicts={2: ready(io=X_INT)}, loads=[2], aspired={2}),
    Case("rollback below the served version is not contract-checked",
         records=(rec(2, A, meta=ready().meta),), on_disk=(1,),
         verdicts={1: ready(io=X_INT)}, loads=[1], aspired={1}),
    # -- deletions -------------------------------------------------------------------------
    Case("newest deleted while serving: the older one loads, then the newest retires",
         records=(rec(2, A),), on_disk=(1,), verdicts={1: ready()}, loads=[1], aspired={1}),
    Case("newest deleted, older one available: the deleted one retires",
         records=(rec(1, A), rec(2, A)), on_disk=(1,), retires=[2], aspired={1}),
    Case("only version deleted: it keeps serving",
         records=(rec(1, A),), on_disk=(), aspired=set()),
    Case("a waiting version whose folder is gone is forgotten",
         records=(rec(1, A), rec(2, W)), on_disk=(1,), forgets=[2], aspired={1}),
    # -- memory ------------------------------------------------------------------------------
    Case("memory short, refuse: InsufficientMemory, the old version serves",
         records=(rec(1, A),), on_disk=(1, 2), verdicts={2: ready()},
         situation={"estimates": {2: 500}, "headroom": 100, "now": 1.0},
         marks={2: (E, "InsufficientMemory")}, aspired={2}),
    Case("memory short, refused before: loads once memory allows",
         records=(rec(1, A), rec(2, E, retry_at=1.0)), on_disk=(1, 2),
         verdicts={2: ready()}, situation={"estimates": {2: 500}, "headroom": 900, "now": 9.0},
         loads=[2], aspired={2}),
    Case("memory short, fallback: the old version retires first, the new one waits",
         records=(rec(1, A),), on_disk=(1, 2), verdicts={2: ready()},
         situation={"estimates": {2: 500}, "headroom": 100, "memory_policy": "fallback"},
         retires=[1], marks={2: (W, None)}, aspired={2}),
    Case("fallback: once the old version ended, the new one loads",
         on_disk=(1, 2), verdicts={2: ready(), 1: ready()},
         situation={"estimates": {2: 500}, "headroom": 100, "memory_policy": "fallback"},
         loads=[2], aspired={2}),
    Case("fallback, then the new load fails: the old version loads again",
         records=(rec(2, E, failed_files=("f",)),), on_disk=(1, 2),
         verdicts={2: ready("f"), 1: ready()},
         situation={"estimates": {1: 500}, "headroom": 100, "memory_policy": "fallback"},
         loads=[1], aspired={1}),
    Case("memory ignored", records=(rec(1, A),), on_disk=(1, 2), verdicts={2: ready()},
         situation={"estimates": {2: 500}, "headroom": 100, "memory_policy": "ignore"},
         loads=[2], aspired={2}),
    Case("headroom unknown: no memory check", records=(rec(1, A),), on_disk=(1, 2),
         verdicts={2: ready()}, situation={"estimates": {2: 500}}, loads=[2], aspired={2}),
    # -- swap policy resource ------------------------------------------------------------------
    Case("resource: retire first, load after", situation={"swap_policy": "resource"},
         records=(rec(1, A),), on_disk=(1, 2), verdicts={2: ready()}, retires=[1],
         marks={2: (W, None)}, aspired={2}),
    Case("resource: still unloading, keep waiting", situation={"swap_policy": "resource"},
         records=(rec(1, U),), on_disk=(1, 2), verdicts={2: ready()},
         marks={2: (W, None)}, aspired={2}),
    Case("resource: the old version ended, load", situation={"swap_policy": "resource"},
         on_disk=(1, 2), verdicts={2: ready()}, loads=[2], aspired={2}),
    # -- fleets: rollout pins and staggered swaps -----------------------------------------------
    Case("rollout pins the stable version, not the newest",
         on_disk=(1, 2, 3), verdicts={3: ready(), 2: ready()},
         situation={"pin": Pin(frozenset({2}), 2)}, loads=[2], aspired={2}),
    Case("canary member keeps stable and canary loaded",
         records=(rec(2, A),), on_disk=(2, 3), verdicts={3: ready()},
         situation={"pin": Pin(frozenset({2, 3}), 3)}, loads=[3], aspired={2, 3}),
    Case("promote: the old stable retires once the new one serves",
         records=(rec(2, A), rec(3, A)), on_disk=(2, 3),
         situation={"pin": Pin(frozenset({3}), 3)}, retires=[2], aspired={3}),
    Case("abort: back to stable, the canary retires",
         records=(rec(2, A), rec(3, A)), on_disk=(2, 3),
         situation={"pin": Pin(frozenset({2}), 2)}, retires=[3], aspired={2}),
    Case("staggered swap: the new version waits for its turn",
         records=(rec(1, A),), on_disk=(1, 2), verdicts={2: ready()},
         situation={"not_before": {2: 50.0}, "now": 10.0}, marks={2: (W, None)}, aspired={2}),
    Case("staggered swap: its turn came",
         records=(rec(1, A),), on_disk=(1, 2), verdicts={2: ready()},
         situation={"not_before": {2: 5.0}, "now": 10.0}, loads=[2], aspired={2}),
    Case("staggered swap: nothing served yet, no waiting",
         on_disk=(1,), verdicts={1: ready()}, situation={"not_before": {1: 50.0}},
         loads=[1], aspired={1}),
    # -- reloads ---------------------------------------------------------------------------------
    Case("outgoing version (old config) serves until the new one is available",
         records=(rec(1, A, outgoing=True),), on_disk=(1,), verdicts={1: ready()},
         loads=[1], aspired={1}),
    Case("outgoing version retires once the new one is available",
         records=(rec(1, A, outgoing=True), rec(1, A)), on_disk=(1,), retires=[1],
         aspired={1}),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_plan(case: Case) -> None:
    result = case.run()
    loads = [a.number for a in result.actions if isinstance(a, Load)]
    retires = [a.number for a in result.actions if isinstance(a, Retire)]
    forgets = [a.number for a in result.actions if isinstance(a, Forget)]
    marks = {a.number: (a.state, a.error_type) for a in result.actions if isinstance(a, Mark)}
    assert loads == case.loads, result
    assert retires == case.retires, result
    assert forgets == case.forgets, result
    assert marks == case.marks, result
    if case.aspired is not None:
        assert result.aspired == case.aspired, result


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_plan_is_idempotent(case: Case) -> None:
    assert case.run() == case.run()


def test_unreadable_base_path_changes_nothing() -> None:
    result = plan(Situation(cfg(), (rec(1, A), rec(2, W)), None, {2: ready()}))
    assert result.actions == () and result.aspired == {1}


def test_recheck_times() -> None:
    waiting_until = plan(Situation(cfg(), (), {1: BASE / "1"}, {1: waiting(at=7.5)}))
    assert waiting_until.recheck_at == 7.5
    retry = plan(Situation(cfg(), (rec(1, A), rec(2, E, retry_at=30.0)),
                           {1: BASE / "1", 2: BASE / "2"}, {2: ready()}, now=10.0))
    assert retry.recheck_at == 30.0
    memory = plan(Situation(cfg(), (rec(1, A),), {1: BASE / "1", 2: BASE / "2"}, {2: ready()},
                            now=10.0, estimates={2: 9}, headroom=1))
    assert memory.recheck_at == 15.0


def test_planner_imports_neither_tensorflow_nor_watchdog() -> None:
    code = ("import sys, modelswap.core.planner; "
            "bad = [m for m in ('tensorflow', 'watchdog') if m in sys.modules]; "
            "sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
