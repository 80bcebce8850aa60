"""A remote base path's rollout file: copied beside the cached versions on change (moto S3),
what the mirror fetches under it, and what a member reports as served under a rollout."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from conftest import Events, Exports, wait_until, yaml_for
from modelswap import ModelSwap, State
from modelswap.config import parse_config
from modelswap.fleet.follow import MirrorRollouts
from modelswap.fleet.repo import Repository
from modelswap.fleet.rollout import ROLLOUT_NAME, Rollout, serves_canary, write_rollout
from modelswap.fleet.status import FleetReporter, decode_status, object_name

pytest.importorskip("obstore")
from modelswap.watch.remote.client import Client
from modelswap.watch.remote.listing import list_versions
from modelswap.watch.remote.rollout import RolloutCopy
from modelswap.watch.remote.store import open_remote


def member(canary: bool, percent: int) -> str:
    return next(f"r{i}" for i in range(1000) if serves_canary(f"r{i}", "m", percent) == canary)


def test_the_rollout_object_is_copied_on_change_only(tmp_path: Path, s3_url: str) -> None:
    client = Client(open_remote(s3_url))
    hints: list[Path] = []
    copy = RolloutCopy("m", tmp_path / "m", hints.append)
    target = tmp_path / "m" / ROLLOUT_NAME

    def sync() -> None:
        copy.sync(client, list_versions(client).rollout)

    sync()
    assert not target.exists() and hints == []
    repo = Repository(s3_url)
    write_rollout(repo, Rollout(1, 2, 34, time.time()))
    sync()
    assert target.read_bytes() == repo.read(ROLLOUT_NAME) and hints == [target]
    gets = client.counters.snapshot()["get"]
    sync()  # unchanged: the listing says so, no GET
    assert client.counters.snapshot()["get"] == gets and len(hints) == 1
    repo.write(ROLLOUT_NAME, b"{not json")  # copied verbatim: the gate reports it
    sync()
    assert target.read_bytes() == b"{not json" and len(hints) == 2
    target.unlink()  # a local copy lost is copied again
    sync()
    assert target.read_bytes() == b"{not json"
    repo.delete(ROLLOUT_NAME)
    sync()
    assert not target.exists() and len(hints) == 4
    assert [p.name for p in target.parent.iterdir()] == []  # no temporary file left


def test_a_rollout_copy_that_cannot_be_written_is_retried_and_stops_nothing(
        tmp_path: Path, s3_url: str) -> None:
    """A real OS error (a folder where the temporary file goes, as a full disk would fail
    the write): `sync` raises nothing, so the mirror's poll goes on judging and fetching
    versions; the copy lands on the first poll after the disk is writable again."""
    import os

    client = Client(open_remote(s3_url))
    copy = RolloutCopy("m", tmp_path / "m")
    target = tmp_path / "m" / ROLLOUT_NAME
    write_rollout(Repository(s3_url), Rollout(1, 2, 34, time.time()))
    blocker = tmp_path / "m" / f".incoming-rollout-{os.getpid()}"
    (blocker / "x").mkdir(parents=True)  # not empty: os.replace cannot remove it either
    with capture_logs() as logs:
        copy.sync(client, list_versions(client).rollout)
        copy.sync(client, list_versions(client).rollout)  # tried again, not logged again
    assert [e["event"] for e in logs] == ["remote_rollout_copy_failed"]
    assert not target.exists()
    (blocker / "x").rmdir()
    blocker.rmdir()
    copy.sync(client, list_versions(client).rollout)
    assert target.read_bytes() == Repository(s3_url).read(ROLLOUT_NAME)
    assert sorted(p.name for p in target.parent.iterdir()) == [ROLLOUT_NAME]


def test_mirror_wants_what_the_rollout_gives_this_member(tmp_path: Path) -> None:
    base = tmp_path / "m"
    base.mkdir()
    on, off = MirrorRollouts(member(True, 34)), MirrorRollouts(member(False, 34))
    complete = [1, 2, 3]
    assert on.wanted("m", base, complete, {}) is None  # no rollout: the version policy
    write_rollout(Repository(base), Rollout(1, 3, 34, time.time()))
    assert on.wanted("m", base, complete, {}) == {1, 3}
    assert off.wanted("m", base, complete, {"pinned": 2, "gone": 9}) == {1, 2}
    (base / ROLLOUT_NAME).write_text(json.dumps({"stable": 1, "oops": True}))
    assert on.wanted("m", base, complete, {}) == {1, 3}  # invalid: the last good one stays
    assert on.wanted("m", base, [1, 2], {}) == {1}  # the canary not in the store (yet)
    (base / ROLLOUT_NAME).unlink()
    assert on.wanted("m", base, complete, {}) is None


def test_a_canary_older_than_stable_is_reported_as_served(
        tmp_path: Path, exports: Exports, monkeypatch: pytest.MonkeyPatch,
        run_swap: Callable[..., tuple[ModelSwap, Events]]) -> None:
    """The status object names the member's default (`acquire(name)`), not the newest
    available version: a canary of an older version (a rollback tried on a few members)."""
    monkeypatch.setenv("MODELSWAP_MEMBER", member(True, 50))
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    exports.publish(base, 2, 2.0)
    write_rollout(Repository(base), Rollout(2, 1, 50, time.time()))
    swap, events = run_swap(yaml_for(base))
    events.wait_state(1, State.AVAILABLE)
    events.wait_state(2, State.AVAILABLE)
    reporter = FleetReporter(swap).start()
    try:
        assert reporter.member == swap.member == member(True, 50)
        target = base / object_name(reporter.member)

        def served() -> int | None:
            found = decode_status(target.read_bytes()) if target.exists() else "none"
            return None if isinstance(found, str) else found.models["m"].served

        wait_until(lambda: served() == 1, what="the canary (v1) reported as served")
        with swap.acquire("m") as handle:
            assert handle.version == 1
    finally:
        reporter.stop()


def test_ray_replicas_get_a_cache_folder_each(tmp_path: Path) -> None:
    pytest.importorskip("ray.serve")
    from modelswap.ray import replica_config

    config = parse_config(
        f"models:\n  - name: a\n    base_path: s3://bucket/a\n"
        f"  - name: b\n    base_path: {tmp_path / 'b'}\n"
        f"remote:\n  cache_dir: {tmp_path / 'cache'}\n")
    mine: Any = replica_config(config, "Ranker#ab/c")
    assert mine.remote.cache_dir == tmp_path / "cache" / "replicas" / "Ranker_ab_c"
    assert [m.base_path for m in mine.models] == [
        tmp_path / "cache" / "replicas" / "Ranker_ab_c" / "a", tmp_path / "b"]
    assert mine.models[0].source_url == "s3://bucket/a"
    local = parse_config(f"models:\n  - name: b\n    base_path: {tmp_path / 'b'}\n")
    assert replica_config(local, "x") is local
