"""A fleet rollout file beside the versions, followed by real ModelSwaps: a canary member
serves the canary by default (label `canary`), the others the stable version; promote and
abort converge; an invalid file is ignored and changes nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import Events, Exports, predict, wait_reason, wait_until, yaml_for
from modelswap import ModelSwap, State
from modelswap.fleet.jitter import swap_delay
from modelswap.fleet.rollout import serves_canary


def member(canary: bool, percent: int = 50) -> str:
    return next(f"r{i}" for i in range(1000) if serves_canary(f"r{i}", "m", percent) == canary)


def write_rollout(base: Path, stable: int, canary: int | None = None, percent: int = 0) -> None:
    body = {"format": 1, "stable": stable, "canary": canary, "percent": percent,
            "updated_at": "2026-11-27T17:00:00Z"}
    staged = base / ".rollout.tmp"
    staged.write_text(json.dumps(body))
    staged.replace(base / "_modelswap_rollout.json")


def default_version(swap: ModelSwap) -> int:
    with swap.acquire("m") as served:
        return served.version


@pytest.mark.parametrize("in_canary", [True, False])
def test_members_follow_the_rollout(tmp_path: Path, exports: Exports, in_canary: bool,
                                    monkeypatch: pytest.MonkeyPatch,
                                    run_swap: Callable[..., tuple[ModelSwap, Events]]) -> None:
    monkeypatch.setenv("MODELSWAP_MEMBER", member(in_canary))
    base = tmp_path / "m"
    base.mkdir()
    for version in (1, 2, 3):
        exports.publish(base, version, float(version))
    write_rollout(base, stable=2, canary=3, percent=50)
    swap, _events = run_swap(yaml_for(base))
    want = 3 if in_canary else 2
    wait_until(lambda: swap._coordinator.snapshot.get("m") is not None
               and default_ok(swap, want), what=f"v{want} as the default")
    with swap.acquire("m", label="stable") as served:
        assert served.version == 2 and predict(served) == 3.0
    if in_canary:
        with swap.acquire("m", label="canary") as served:
            assert served.version == 3
    assert 1 not in swap._coordinator.snapshot["m"].versions  # the policy's newest is pinned

    (base / "_modelswap_rollout.json").write_text("{not json")  # ignored: nothing changes
    wait_until(lambda: swap._coordinator._models["m"].rollout_problem is not None,
               what="the invalid rollout noticed")
    assert default_version(swap) == want

    write_rollout(base, stable=3)  # promote: everyone converges on 3
    wait_until(lambda: default_ok(swap, 3), what="promoted")
    write_rollout(base, stable=2)  # roll back to 2 everywhere
    wait_until(lambda: default_ok(swap, 2), what="rolled back")
    (base / "_modelswap_rollout.json").unlink()  # no rollout: the version policy again
    wait_until(lambda: default_ok(swap, 3), what="the newest again")


def default_ok(swap: ModelSwap, version: int) -> bool:
    view = swap._coordinator.snapshot.get("m")
    return view is not None and view.newest is not None and view.newest.version == version


def test_member_hash_is_stable_and_spread() -> None:
    members = [f"host-{i}" for i in range(1000)]
    share = sum(serves_canary(m, "ranker", 34) for m in members) / len(members)
    assert 0.28 < share < 0.40
    assert [serves_canary(m, "ranker", 34) for m in members[:20]] == \
        [serves_canary(m, "ranker", 34) for m in members[:20]]
    assert not any(serves_canary(m, "ranker", 0) for m in members)
    assert all(serves_canary(m, "ranker", 100) for m in members)


def test_staggered_swap_waits_for_its_turn(tmp_path: Path, exports: Exports,
                                           monkeypatch: pytest.MonkeyPatch,
                                           run_swap: Callable[..., tuple[ModelSwap, Events]]
                                           ) -> None:

    late = next(f"r{i}" for i in range(1000) if swap_delay(f"r{i}", "m", 2, 3600) > 600)
    monkeypatch.setenv("MODELSWAP_MEMBER", late)
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    swap, events = run_swap(yaml_for(base, top="remote: {swap_jitter: 1h}"))
    assert swap.wait_until_available("m", timeout=60) == 1  # start-up is never delayed
    exports.publish(base, 2, 2.0)
    wait_reason(swap, 2, "waiting for its turn")
    assert default_version(swap) == 1 and events.states(2) == [State.WAITING]
