"""Pure parts by table: rollout validation, the canary hash, which versions a member
wants, swap jitter, member ids."""

from __future__ import annotations

import hashlib
import json
import socket
from typing import Any

import pytest

from modelswap.fleet.jitter import swap_delay
from modelswap.fleet.rollout import (
    MemberVersions,
    Rollout,
    RolloutProblem,
    member_id,
    member_versions,
    parse_rollout,
    serves_canary,
)
from modelswap.fleet.timefmt import iso, parse_iso

T = "2026-11-27T17:00:00.000Z"
T_EPOCH = parse_iso(T)


def body(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


@pytest.mark.parametrize(("data", "expected"), [
    (body(stable=7, updated_at=T), Rollout(7, None, 0, T_EPOCH or 0)),
    (body(format=1, stable=7, canary=8, percent=34, updated_at=T), Rollout(7, 8, 34, T_EPOCH or 0)),
    (body(stable=7, canary=None, percent=0, updated_at=T), Rollout(7, None, 0, T_EPOCH or 0)),
    (body(stable=7, canary=6, percent=100, updated_at="2026-11-27T18:00:00+01:00"),
     Rollout(7, 6, 100, T_EPOCH or 0)),
])
def test_valid_rollouts(data: bytes, expected: Rollout) -> None:
    assert parse_rollout(data) == expected


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "not JSON"),
    (b"\xff\xfe", "not UTF-8"),
    (b"[7]", "expected a JSON object, got list"),
    (body(stable=7, updated_at=T, percentage=3), "unknown key(s) 'percentage'"),
    (body(format=2, stable=7, updated_at=T), "format: unsupported 2"),
    (body(format=True, stable=7, updated_at=T), "format: unsupported True"),
    (body(updated_at=T), "stable: required"),
    (body(stable=7), "updated_at: required"),
    (body(stable=0, updated_at=T), "stable: must be a positive integer, got 0"),
    (body(stable="7", updated_at=T), "stable: must be a positive integer, got '7'"),
    (body(stable=True, updated_at=T), "stable: must be a positive integer, got True"),
    (body(stable=7.0, updated_at=T), "stable: must be a positive integer, got 7.0"),
    (body(stable=7, canary=-1, percent=5, updated_at=T), "canary: must be a positive integer"),
    (body(stable=7, canary=7, percent=5, updated_at=T), "canary: must differ from stable (7)"),
    (body(stable=7, canary=8, updated_at=T), "percent: required with a canary"),
    (body(stable=7, canary=8, percent=101, updated_at=T), "percent: must be an integer from 0"),
    (body(stable=7, canary=8, percent=-1, updated_at=T), "percent: must be an integer from 0"),
    (body(stable=7, canary=8, percent=33.5, updated_at=T), "percent: must be an integer from 0"),
    (body(stable=7, canary=8, percent="34", updated_at=T), "percent: must be an integer from 0"),
    (body(stable=7, percent=10, updated_at=T), "percent: must be 0 without a canary, got 10"),
    (body(stable=7, updated_at="2026-11-27 17:00"), "updated_at: must be an ISO 8601 time"),
    (body(stable=7, updated_at=1764262800), "updated_at: must be an ISO 8601 time"),
    (b" " * 70000, "larger than 65536 bytes"),
])
def test_invalid_rollouts_are_problems_never_exceptions(data: bytes, reason: str) -> None:
    found = parse_rollout(data, "base/_modelswap_rollout.json")
    assert isinstance(found, RolloutProblem), found
    assert reason in found.reason
    assert str(found).startswith("base/_modelswap_rollout.json: ")


def test_rollout_round_trips_through_its_file() -> None:
    rollout = Rollout(7, 8, 34, 1764262800.25)
    assert parse_rollout(rollout.to_json()) == rollout
    assert json.loads(rollout.to_json())["updated_at"] == iso(1764262800.25)


def reference_pick(member: str, model: str, percent: int) -> bool:
    """The documented rule, written out: blake2b-64 of member NUL model, mod 100, < P."""
    digest = hashlib.blake2b(f"{member}\0{model}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 100 < percent


@pytest.mark.parametrize(("model", "percent", "canary_members"), [
    ("ranker", 34, {"r1"}),
    ("ranker", 50, {"r0", "r1"}),
    ("ranker", 80, {"r0", "r1", "r2"}),
    ("ranker", 0, set()),
    ("half_plus_two", 34, set()),
    ("half_plus_two", 56, {"r2"}),
    ("half_plus_two", 100, {"r0", "r1", "r2"}),
    ("m", 49, {"r0"}),
])
def test_canary_members_are_exactly_those_the_hash_picks(
        model: str, percent: int, canary_members: set[str]) -> None:
    members = ["r0", "r1", "r2"]
    picked = {m for m in members if serves_canary(m, model, percent)}
    assert picked == canary_members  # pinned: the hash must never change between releases
    assert picked == {m for m in members if reference_pick(m, model, percent)}


def test_canary_share_spreads_over_many_members() -> None:
    for percent in (1, 10, 34, 50, 90):
        chosen = sum(serves_canary(f"replica-{i}", "ranker", percent) for i in range(4000))
        assert abs(chosen / 4000 - percent / 100) < 0.03, (percent, chosen)
    # a member in the share at P stays in it at every higher P (raising P only adds members)
    for i in range(200):
        flags = [serves_canary(f"r{i}", "m", p) for p in range(101)]
        assert flags == sorted(flags)


R = Rollout(7, 8, 34, 0.0)


@pytest.mark.parametrize(("rollout", "on_disk", "in_canary", "expected"), [
    (None, {7, 8}, False, None),
    (R, {6, 7, 8}, False, MemberVersions(7, frozenset({7}), {"stable": 7})),
    (R, {6, 7, 8}, True,
     MemberVersions(8, frozenset({7, 8}), {"stable": 7, "canary": 8}, canary=True)),
    # the canary not there (yet): a canary member serves the stable version meanwhile
    (R, {7}, True, MemberVersions(7, frozenset({7}), {"stable": 7}, (8,), True)),
    # the stable version gone: nothing wanted, nothing to default to (what is served stays)
    (R, {8}, False, MemberVersions(None, frozenset(), {}, (7,))),
    (R, {8}, True, MemberVersions(8, frozenset({8}), {"canary": 8}, (7,), True)),
    (R, set(), True, MemberVersions(None, frozenset(), {}, (7, 8), True)),
    # no canary, or a canary on 0%: everyone serves the stable version
    (Rollout(7), {7, 8}, True, MemberVersions(7, frozenset({7}), {"stable": 7})),
    (Rollout(7, 8, 0), {7, 8}, True, MemberVersions(7, frozenset({7}), {"stable": 7})),
    # a rollback canary (older than stable) is still the canary member's default
    (Rollout(7, 6, 50), {6, 7}, True,
     MemberVersions(6, frozenset({6, 7}), {"stable": 7, "canary": 6}, canary=True)),
])
def test_which_versions_a_member_wants(rollout: Rollout | None, on_disk: set[int],
                                       in_canary: bool, expected: MemberVersions | None) -> None:
    assert member_versions(rollout, on_disk, in_canary) == expected


def test_swap_delay_is_stable_spread_and_in_range() -> None:
    assert swap_delay("r0", "m", 2, 10.0) == swap_delay("r0", "m", 2, 10.0)
    assert swap_delay("r0", "m", 2, 0) == 0.0
    assert swap_delay("r0", "m", 2, -5) == 0.0
    assert swap_delay("r0", "m", 2, float("nan")) == 0.0
    delays = [swap_delay(f"r{i}", "m", 2, 10.0) for i in range(2000)]
    assert all(0.0 <= d < 10.0 for d in delays)
    assert len({round(d, 6) for d in delays}) > 1900  # members do not collide
    assert min(delays) < 0.1 and max(delays) > 9.9
    for tenth in range(10):  # roughly even over [0, jitter)
        assert 140 < sum(tenth <= d < tenth + 1 for d in delays) < 260
    # each new version gets a fresh offset, so no member is always last
    assert swap_delay("r0", "m", 2, 10.0) != swap_delay("r0", "m", 3, 10.0)
    assert swap_delay("r0", "m", 2, 5e-324) == 0.0  # never the jitter itself


def test_member_id_order(monkeypatch: pytest.MonkeyPatch) -> None:
    assert member_id({"MODELSWAP_MEMBER": "r7"}) == "r7"
    assert member_id({"MODELSWAP_MEMBER": "  "}) == socket.gethostname()
    assert member_id({}) == socket.gethostname()
    monkeypatch.setenv("MODELSWAP_MEMBER", "from-env")
    assert member_id() == "from-env"
