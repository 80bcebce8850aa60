"""The fleet view by table: who disagrees, what is stale, the table, and the exit codes of
`modelswap fleet status` over real status objects."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pytest

from modelswap.fleet.cli import add_fleet_parsers
from modelswap.fleet.repo import Repository
from modelswap.fleet.rollout import ROLLOUT_NAME, Rollout, RolloutProblem, write_rollout
from modelswap.fleet.status import (
    MemberStatus,
    ModelReport,
    VersionReport,
    encode_status,
    object_name,
)
from modelswap.fleet.view import FleetView, expected_version, fleet_problems, render_fleet

NOW = 10_000.0


def member(name: str, served: int | None, since: float = NOW - 1000, heartbeat: float = NOW - 5,
           model: str = "ranker", extra: tuple[VersionReport, ...] = ()) -> MemberStatus:
    versions = (*extra, *([VersionReport(served, "AVAILABLE", since)] if served else []))
    return MemberStatus(name, "host", 1, NOW - 2000, heartbeat,
                        {model: ModelReport(served, versions)})


def problems(rollout: Rollout | RolloutProblem | None, *members: MemberStatus) -> list[str]:
    return fleet_problems(FleetView("base", rollout, members), NOW, grace=300, stale_after=90)


OLD_CANARY = Rollout(1, 2, 34, NOW - 1000)  # at 34% the hash picks r1 for "ranker"


def test_expected_versions_follow_the_hash() -> None:
    assert [expected_version(OLD_CANARY, m, "ranker") for m in ("r0", "r1", "r2")] == [1, 2, 1]


@pytest.mark.parametrize(("rollout", "members", "found"), [
    # converged under a canary: r1 on the canary, the others stable
    (OLD_CANARY, [member("r0", 1), member("r1", 2), member("r2", 1)], []),
    # r2 on the canary it was not given, long after the change
    (OLD_CANARY, [member("r0", 1), member("r1", 2), member("r2", 2)],
     ["r2: serves ranker v2, the rollout gives it v1 (rollout changed 16m ago)"]),
    # the same within the grace period after the change: converging, fine
    (Rollout(1, 2, 34, NOW - 60), [member("r0", 2), member("r1", 1), member("r2", 2)], []),
    # no rollout: everyone on the same version
    (None, [member("r0", 2), member("r1", 2)], []),
    # no rollout, a publish 1 minute ago reached r0 only: within the grace period
    (None, [member("r0", 2, since=NOW - 60), member("r1", 1)], []),
    # ... 10 minutes ago: r1 is stuck
    (None, [member("r0", 2, since=NOW - 600), member("r1", 1)],
     ["members disagree on ranker for 10m: v1 (r1), v2 (r0)"]),
    (None, [member("r0", 2), member("r1", None)],
     ["members disagree on ranker for 16m: no version (r1), v2 (r0)"]),
    # a stale member is reported once, and left out of the agreement
    (None, [member("r0", 2), member("r1", 1, heartbeat=NOW - 120)],
     ["r1: heartbeat 2m old (stale after 1m)"]),
    (RolloutProblem("base/_modelswap_rollout.json", "percent: required with a canary"),
     [member("r0", 2)],
     ["rollout file ignored: base/_modelswap_rollout.json: percent: required with a canary"]),
    (None, [], ["base: no member status objects (_fleet/*.json)"]),
])
def test_fleet_problems(rollout: Rollout | RolloutProblem | None, members: list[MemberStatus],
                        found: list[str]) -> None:
    assert problems(rollout, *members) == found


def test_table() -> None:
    failing = VersionReport(3, "ERROR", NOW - 30, "bad pb", "LoadError")
    view = FleetView("base", OLD_CANARY, [member("r0", 1, extra=(failing,)), member("r1", 1),
                                          member("r2", None, heartbeat=NOW - 61)])
    assert render_fleet(view, NOW).splitlines() == [
        "rollout: stable 1, canary 2 on 34% (changed 16m ago)",
        "MEMBER  MODEL   VERSION  STATE      AGE  HEARTBEAT  NOTE",
        "r0      ranker  1        AVAILABLE  16m  5s         stable; v3 ERROR (LoadError: bad pb)",
        "r1      ranker  1        AVAILABLE  16m  5s         canary: wants v2",
        "r2      ranker  -        -          -    1m         stable: wants v1",
    ]


def write_member(base: Path, status: MemberStatus) -> None:
    Repository(base).write(object_name(status.member), encode_status(status))


def fleet_status(base: Path) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="modelswap")
    add_fleet_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["fleet", "status", str(base)])
    out: list[str] = []
    code = args.func(args, out=out.append, err=out.append)
    return code, "\n".join(out)


def test_fleet_status_exit_codes(tmp_path: Path) -> None:
    now = time.time()
    code, out = fleet_status(tmp_path)
    assert code == 1 and "no member status objects" in out
    for name in ("r0", "r1", "r2"):
        write_member(tmp_path, MemberStatus(name, "h", 1, now - 100, now - 1, {
            "ranker": ModelReport(1, (VersionReport(1, "AVAILABLE", now - 50),))}))
    code, out = fleet_status(tmp_path)
    assert code == 0, out
    assert out.splitlines()[0] == "rollout: none (members follow their version policy)"
    assert [line.split()[:4] for line in out.splitlines()[2:]] == [
        [m, "ranker", "1", "AVAILABLE"] for m in ("r0", "r1", "r2")]

    write_rollout(Repository(tmp_path), Rollout(1, 2, 34, now - 1000))
    code, out = fleet_status(tmp_path)  # r1 should have moved to the canary long ago
    assert code == 1 and "problem: r1: serves ranker v1, the rollout gives it v2" in out
    write_member(tmp_path, MemberStatus("r1", "h", 1, now - 100, now - 1, {
        "ranker": ModelReport(2, (VersionReport(2, "AVAILABLE", now - 20),))}))
    assert fleet_status(tmp_path)[0] == 0

    write_member(tmp_path, MemberStatus("r2", "h", 1, now - 900, now - 600, {
        "ranker": ModelReport(1, (VersionReport(1, "AVAILABLE", now - 900),))}))
    code, out = fleet_status(tmp_path)
    assert code == 1 and "problem: r2: heartbeat 10m old" in out

    (tmp_path / ROLLOUT_NAME).write_text("{")
    code, out = fleet_status(tmp_path)
    assert code == 1 and "rollout: ignored" in out and "not JSON" in out
