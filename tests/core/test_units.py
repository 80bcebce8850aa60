"""Pure logic units: version names, policies, the gate's settle rule, the retry schedule."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from conftest import Exports, yaml_for
from modelswap import State, TransientLoadError
from modelswap.config import VersionPolicy
from modelswap.core.policy import aspired_versions
from modelswap.gate.judge import Gate
from modelswap.gate.listing import list_versions, parse_version
from modelswap.gate.scan import wanted_on_disk
from modelswap.load import job as loader_module


@pytest.mark.parametrize(("name", "number"), [
    ("1", 1), ("0001", 1), ("00000123", 123), (str(2**63 - 1), 2**63 - 1),
    ("0", None), ("000", None), ("-1", None), ("+1", None), ("1.0", None), ("v1", None),
    ("", None), ("٣", None), (str(2**63), None), (" 1", None),
])
def test_parse_version(name: str, number: int | None) -> None:
    assert parse_version(name) == number


def test_list_versions_warns_on_duplicates(tmp_path: Path) -> None:
    for name in ("001", "0001", "2", "tmp", "3x"):
        (tmp_path / name).mkdir()
    (tmp_path / "4").write_text("a file")
    versions, warnings = list_versions(tmp_path)
    assert versions == {1: tmp_path / "0001", 2: tmp_path / "2"}
    assert warnings == ["version 1 has several folders ['0001', '001']; using 0001"]
    with pytest.raises(OSError):
        list_versions(tmp_path / "missing")


LATEST2 = VersionPolicy(kind="latest", latest=2)


@pytest.mark.parametrize(("policy", "labels", "expected"), [
    (VersionPolicy(kind="latest", latest=1), {}, {9}),
    (LATEST2, {}, {5, 9}),
    (LATEST2, {"stable": 1}, {1, 5, 9}),
    (LATEST2, {"gone": 4}, {5, 9}),
    (VersionPolicy(kind="all"), {}, {1, 3, 5, 9}),
    (VersionPolicy(kind="specific", specific=(3, 4)), {}, {3}),
])
def test_aspired_versions(policy: VersionPolicy, labels: dict[str, int],
                          expected: set[int]) -> None:
    assert aspired_versions([1, 3, 5, 9], policy, labels) == expected


def test_wanted_on_disk_newest_first() -> None:
    assert wanted_on_disk([1, 9, 5], LATEST2) == [9, 5, 1]
    specific = VersionPolicy(kind="specific", specific=(5,))
    assert wanted_on_disk([1, 9, 5], specific, {"old": 1}) == [5, 1]


class Clock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def test_gate_settle_rule(tmp_path: Path, exports: Exports) -> None:
    version = tmp_path / "1"
    shutil.copytree(exports.get(1.0), version, copy_function=shutil.copyfile)  # fresh mtimes
    pb = version / "saved_model.pb"
    mtime = pb.stat().st_mtime
    mono, wall = Clock(100.0), Clock(mtime + 0.05)
    gate = Gate(settle=0.2, clock=mono, wall_clock=wall)
    tags = frozenset({"serve"})
    first = gate.check(version, tags, None)
    assert first.waiting and "settling" in (first.reason or "")
    assert first.recheck_at == pytest.approx(100.15)
    mono.now, wall.now = 100.1, mtime + 0.15
    assert gate.check(version, tags, None).waiting
    mono.now, wall.now = 100.2, mtime + 0.25  # mtime is old enough now
    assert gate.check(version, tags, None).ready
    # a saved_model.pb renamed into place is whole at once, whatever its mtime
    fresh = tmp_path / "2"
    shutil.copytree(exports.get(1.0), fresh, copy_function=shutil.copyfile)
    wall.now = (fresh / "saved_model.pb").stat().st_mtime
    assert gate.check(fresh, tags, None).waiting
    staged = tmp_path / "staged.pb"
    shutil.copyfile(fresh / "saved_model.pb", staged)
    os.replace(staged, fresh / "saved_model.pb")
    gate.note_renamed(fresh / "saved_model.pb")
    assert gate.check(fresh, tags, None).ready


def test_gate_marker(tmp_path: Path, exports: Exports) -> None:
    version = tmp_path / "1"
    shutil.copytree(exports.get(1.0), version)
    gate = Gate(settle=0.0)
    verdict = gate.check(version, frozenset({"serve"}), "_SUCCESS")
    assert verdict.waiting and verdict.reason == "marker _SUCCESS missing"
    (version / "_SUCCESS").touch()
    assert gate.check(version, frozenset({"serve"}), "_SUCCESS").ready


def test_transient_failures_retried_with_backoff(tmp_path: Path, exports: Exports,
                                                 run_swap: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The retry schedule around a real loader that fails transiently twice."""
    real = loader_module.load_version
    failures = iter([TransientLoadError("UnavailableError: flaky disk")] * 2)

    def flaky(*args: Any) -> Any:
        error = next(failures, None)
        if error is not None:
            raise error
        return real(*args)

    monkeypatch.setattr(loader_module, "load_version", flaky)
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    swap, events = run_swap(yaml_for(base, top="loader: {retry_interval: 50ms, max_retries: 2}"))
    swap.wait_until_available("m", timeout=60)
    errors = [e.error for e in events.items if e.state is State.ERROR]
    assert errors == ["UnavailableError: flaky disk (retry 1 of 2 in 0.05s)",
                      "UnavailableError: flaky disk (retry 2 of 2 in 0.1s)"]


def test_transient_failures_exhausted(tmp_path: Path, exports: Exports, run_swap: Any,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    def always(*args: Any) -> Any:
        raise TransientLoadError("UnavailableError: gone for good")

    monkeypatch.setattr(loader_module, "load_version", always)
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    swap, events = run_swap(yaml_for(base, top="loader: {retry_interval: 10ms, max_retries: 1}"))
    events.wait(lambda evs: any(e.error == "UnavailableError: gone for good" for e in evs))
    [status] = swap.status()["m"]
    assert status.state is State.ERROR and status.retries == 1
