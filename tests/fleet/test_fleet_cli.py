"""`modelswap rollout` on a local base path and on S3 (moto on 127.0.0.1), and the status
objects' round trip through the repository."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import pytest

from fleet.fleet_helpers import FLEET_SECRET
from modelswap.events import State, VersionStatus
from modelswap.fleet.cli import add_fleet_parsers
from modelswap.fleet.repo import Repository
from modelswap.fleet.rollout import ROLLOUT_NAME, Rollout, parse_rollout, read_rollout
from modelswap.fleet.status import (
    FLEET_DIR,
    StatusWriter,
    decode_status,
    object_name,
    read_fleet,
)


def run(*argv: str) -> tuple[int, str, str]:
    """The CLI function for `argv` (as `modelswap ...` parses it): (exit code, out, err)."""
    parser = argparse.ArgumentParser(prog="modelswap")
    add_fleet_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    out: list[str] = []
    err: list[str] = []
    code = args.func(args, out=out.append, err=err.append)
    return code, "\n".join(out), "\n".join(err)


@pytest.fixture
def base(tmp_path: Path) -> Path:
    base = tmp_path / "ranker"
    for n in (1, 2, 3):
        (base / str(n)).mkdir(parents=True)
    (base / ".staging-4").mkdir()  # not a version
    return base


def on_file(base: Path) -> Rollout:
    found = parse_rollout((base / ROLLOUT_NAME).read_bytes())
    assert isinstance(found, Rollout), found
    return found


def test_rollout_cycle_on_a_local_base_path(base: Path) -> None:
    assert run("rollout", str(base)) == (0, f"{base}: no rollout (members follow their version "
                                            "policy)", "")
    before = time.time()
    code, out, _ = run("rollout", str(base), "--canary", "3", "--percent", "34")
    assert code == 0 and "stable 2, canary 3 on 34%" in out
    first = on_file(base)
    assert (first.stable, first.canary, first.percent) == (2, 3, 34)
    assert first.updated_at >= before - 1
    assert run("rollout", str(base))[:2] == (0, f"{base}: stable 2, canary 3 on 34%")

    code, out, _ = run("rollout", str(base), "--canary", "3", "--percent", "50")
    assert code == 0 and on_file(base).percent == 50  # a new share keeps the stable version
    assert run("rollout", str(base), "--promote")[0] == 0
    assert on_file(base) == Rollout(3, None, 0, on_file(base).updated_at)
    code, _, err = run("rollout", str(base), "--promote")
    assert code == 1 and "no canary to promote" in err

    assert run("rollout", str(base), "--canary", "1", "--percent", "10")[0] == 0
    assert (on_file(base).stable, on_file(base).canary) == (3, 1)  # a rollback canary
    assert run("rollout", str(base), "--abort")[0] == 0
    assert (on_file(base).stable, on_file(base).canary) == (3, None)
    assert run("rollout", str(base), "--stable", "2")[0] == 0  # pin: a fleet-wide rollback
    assert (on_file(base).stable, on_file(base).canary) == (2, None)
    assert sorted(p.name for p in base.iterdir()) == [".staging-4", "1", "2", "3", ROLLOUT_NAME]
    assert (base / ROLLOUT_NAME).stat().st_mode & 0o777 == 0o644 & ~_umask()

    code, out, _ = run("rollout", str(base), "--clear")
    assert code == 0 and "rollout removed" in out and not (base / ROLLOUT_NAME).exists()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize(("argv", "message"), [
    (["--canary", "9", "--percent", "10"], "canary version 9 is not in the base path "
                                           "(versions: 1, 2, 3)"),
    (["--canary", "3"], "--canary N needs --percent P"),
    (["--percent", "5"], "--percent goes with --canary N"),
    (["--canary", "3", "--percent", "5", "--stable", "7"], "stable version 7 is not in"),
    (["--canary", "3", "--percent", "5", "--stable", "3"], "must differ from the stable"),
    (["--canary", "1", "--percent", "5"], "no stable version to keep: pass --stable S"),
    (["--abort"], "there is no canary to abort"),
    (["--stable", "8"], "stable version 8 is not in the base path"),
])
def test_refused_changes_write_nothing(base: Path, argv: list[str], message: str) -> None:
    code, out, err = run("rollout", str(base), *argv)
    assert (code, out) == (1, "")
    assert message in err, err
    assert not (base / ROLLOUT_NAME).exists()


@pytest.mark.parametrize("argv", [["--percent", "101"], ["--canary", "0"], ["--canary", "x"],
                                  ["--promote", "--abort"], ["--canary", "2", "--promote"]])
def test_bad_arguments_are_usage_errors(base: Path, argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        run("rollout", str(base), *argv)
    assert exit_.value.code == 2


def test_an_invalid_rollout_file_is_reported_and_needs_an_explicit_stable(base: Path) -> None:
    (base / ROLLOUT_NAME).write_text(
        '{"stable": 2, "canary": 3, "updated_at": "2026-11-27T17:00:00Z"}')
    code, out, _ = run("rollout", str(base))
    assert code == 1 and "percent: required with a canary" in out
    code, _, err = run("rollout", str(base), "--promote")
    assert code == 1 and "the rollout file is invalid" in err
    code, _, err = run("rollout", str(base), "--canary", "3", "--percent", "5")
    assert code == 1 and "pass --stable S" in err
    assert run("rollout", str(base), "--canary", "3", "--percent", "5", "--stable", "1")[0] == 0
    assert (on_file(base).stable, on_file(base).canary) == (1, 3)


def test_a_missing_base_path_is_an_error(tmp_path: Path) -> None:
    code, _, err = run("rollout", str(tmp_path / "nope"), "--stable", "1")
    assert code == 2 and "No such file or directory" in err
    code, _, err = run("fleet", "status", str(tmp_path / "nope"))
    assert code == 1 and "no member status objects" in err + run(
        "fleet", "status", str(tmp_path / "nope"))[1]


def vs(version: int, state: State = State.AVAILABLE, since: float = 0.0,
       error: str | None = None) -> VersionStatus:
    return VersionStatus(version, state, Path(f"/m/{version}"), error,
                         "LoadError" if error else None, since)


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_status_writer_writes_on_change_and_every_heartbeat(tmp_path: Path) -> None:
    repo = Repository(tmp_path)
    clock = Clock(1000.0)
    writer = StatusWriter(repo, "SERVE_REPLICA::app#D#x1", clock=clock)
    target = tmp_path / object_name("SERVE_REPLICA::app#D#x1")
    assert target.name == "SERVE_REPLICA__app_D_x1.json"
    one = {"m": [vs(1, since=990.0)]}
    assert writer.offer(one) and target.exists()
    clock.t = 1010.0
    assert not writer.offer(one)  # unchanged, heartbeat not due
    assert writer.due() == 1030.0
    clock.t = 1030.0
    assert writer.offer(one)  # the heartbeat
    two = {"m": [vs(2, State.LOADING, 1030.2), vs(1, since=990.0)]}
    clock.t = 1030.5
    assert not writer.offer(two)  # a change within min_gap of the last write waits
    clock.t = 1031.0
    assert writer.offer(two)
    status = decode_status(target.read_bytes())
    assert not isinstance(status, str)
    assert status.member == "SERVE_REPLICA::app#D#x1" and status.heartbeat == 1031.0
    report = status.models["m"]
    assert report.served == 1 and [v.state for v in report.versions] == ["LOADING", "AVAILABLE"]
    assert [p.name for p in (tmp_path / FLEET_DIR).iterdir()] == [target.name]  # no temp files
    writer.remove()
    assert not target.exists()


def test_status_writer_failure_is_logged_not_raised(tmp_path: Path) -> None:
    from structlog.testing import capture_logs

    (tmp_path / FLEET_DIR).write_text("a file where the folder should be")
    clock = Clock(1000.0)
    writer = StatusWriter(Repository(tmp_path), "r0", clock=clock)
    with capture_logs() as logs:
        assert not writer.offer({"m": [vs(1)]})
        assert writer.due() == 1005.0  # retried later, not in a tight loop
        assert not writer.offer({"m": [vs(1)]})
        clock.t = 1005.0
        assert not writer.offer({"m": [vs(1)]})
    assert [e["event"] for e in logs] == ["fleet_status_write_failed"]
    (tmp_path / FLEET_DIR).unlink()
    clock.t = 1010.0
    assert writer.offer({"m": [vs(1)]}) and writer.due() == 1040.0


@pytest.mark.parametrize("data", [b"{}", b"nope", b'{"format": 1, "member": "r0", "models": 3}',
                                  b'{"format": 1, "member": "r0", "started": "x", "models": {}}'])
def test_bad_status_objects_are_named_not_raised(tmp_path: Path, data: bytes) -> None:
    (tmp_path / FLEET_DIR).mkdir()
    (tmp_path / FLEET_DIR / "bad.json").write_bytes(data)
    members, problems = read_fleet(Repository(tmp_path))
    assert members == [] and len(problems) == 1 and "bad.json: unreadable status" in problems[0]


@pytest.fixture
def bucket(s3_url: str) -> tuple[Any, str]:
    """(boto3 client, bucket) on moto (conftest's `s3_url`), with two versions of `ranker`."""
    import boto3

    client = boto3.client("s3")
    name = s3_url.removeprefix("s3://").split("/")[0]
    for n in (1, 2):
        client.put_object(Bucket=name, Key=f"ranker/{n}/saved_model.pb", Body=b"pb")
        client.put_object(Bucket=name, Key=f"ranker/{n}/_modelswap_manifest.json", Body=b"{}")
    client.put_object(Bucket=name, Key="ranker/notes.txt", Body=b"not a version")
    return client, name


def test_rollout_cycle_on_s3(bucket: tuple[Any, str]) -> None:
    client, name = bucket
    url = f"s3://{name}/ranker"
    assert run("rollout", url)[0] == 0
    code, out, err = run("rollout", url, "--canary", "2", "--percent", "34")
    assert code == 0, err
    assert out.startswith(f"{url}: stable 1, canary 2 on 34%")
    body = client.get_object(Bucket=name, Key=f"ranker/{ROLLOUT_NAME}")["Body"].read()
    found = parse_rollout(body)
    assert isinstance(found, Rollout) and (found.stable, found.canary, found.percent) == (1, 2, 34)
    code, _, err = run("rollout", url, "--canary", "5", "--percent", "34")
    assert code == 1 and "canary version 5 is not in the base path (versions: 1, 2)" in err
    assert run("rollout", url, "--promote")[0] == 0
    promoted = read_rollout(Repository(url))
    assert isinstance(promoted, Rollout) and (promoted.stable, promoted.canary) == (2, None)
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=name)["Contents"])
    assert f"ranker/{ROLLOUT_NAME}" in keys and not any("tmp" in k for k in keys)

    now = time.time()
    for member, version in (("r0", 2), ("r1", 2)):
        StatusWriter(Repository(url), member).offer({"ranker": [vs(version, since=now - 1)]})
    code, out, _ = run("fleet", "status", url)
    assert code == 0, out
    assert "r0" in out and "r1" in out and "stable" in out
    assert run("rollout", url, "--clear")[0] == 0
    assert read_rollout(Repository(url)) is None


def test_a_remote_base_path_that_cannot_be_listed_is_an_error(bucket: tuple[Any, str]) -> None:
    code, _, err = run("rollout", f"s3://{bucket[1]}-gone/ranker", "--stable", "1")
    assert code == 2 and f"s3://{bucket[1]}-gone/ranker" in err and "\n" not in err
    assert FLEET_SECRET not in err


def test_fleet_reporter_writes_a_running_swaps_status(tmp_path: Path, exports: Any,
                                                      run_swap: Any) -> None:
    from modelswap.fleet.status import FleetReporter

    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    swap, events = run_swap(f"models:\n  - name: m\n    base_path: {base}\n")
    events.wait_state(1, State.AVAILABLE)
    reporter = FleetReporter(swap, "r0").start()
    try:
        target = base / object_name("r0")
        deadline = time.monotonic() + 60
        while True:  # the first write happens as the reporter starts
            data = target.read_bytes() if target.exists() else b""
            status = decode_status(data) if data else None
            if status is not None and not isinstance(status, str):
                break
            assert time.monotonic() < deadline, "no status object"
            time.sleep(0.05)
        assert status.member == "r0" and status.models["m"].served == 1
        exports.publish(base, 2, 2.0)
        events.wait_state(2, State.AVAILABLE)

        def served() -> int | None:
            found = decode_status(target.read_bytes())
            return None if isinstance(found, str) else found.models["m"].served

        while served() != 2:  # written on the change, not at the next heartbeat
            assert time.monotonic() < deadline, "the change was not written"
            time.sleep(0.05)
    finally:
        reporter.stop()
    assert not target.exists()  # a member leaving on purpose removes its status object


def test_rollout_names_the_known_members_it_puts_on_the_canary(base: Path) -> None:
    for name in ("r0", "r1", "r2"):
        StatusWriter(Repository(base), name).offer({"ranker": [vs(2, since=time.time())]})
    code, out, _ = run("rollout", str(base), "--canary", "3", "--percent", "34")
    assert code == 0
    assert out.splitlines()[1:] == ["  ranker: canary on 1 of 3 known members (r1)"]
