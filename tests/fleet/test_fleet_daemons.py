"""A fleet of 3 real `modelswap run` daemons (no Ray) following one moto S3 bucket.

Each daemon has its own `remote.cache_dir` and `MODELSWAP_MEMBER`, writes its status
object (`service.fleet_status`) and is observed through its status endpoint (/v1/models).
A publish reaches all 3; a canary at 34% is served by exactly the members the project's
hash picks; abort and promote converge; no daemon ever stops serving a version; and
`modelswap fleet status` (the real CLI) shows it, exiting 1 while a frozen member disagrees
beyond the rollout or its heartbeat is stale.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import Exports
from daemon import DaemonProcess  # tests/daemon.py: the real daemon process
from fleet.fleet_helpers import DAEMON, FLEET_SECRET, cli, split_members, table, wait_for
from modelswap.cli.status import fetch_models
from modelswap.fleet.rollout import serves_canary

pytest.importorskip("obstore")
from modelswap.watch.remote import publish

PERCENT = 34


class Fleet:
    """The daemons, their status URLs, and a poller that records every answer of each
    status endpoint (an answer without a served version, after the first, is a failure)."""

    def __init__(self, daemons: dict[str, DaemonProcess]) -> None:
        self.daemons = daemons
        self.urls = {m: d.wait_log(lambda r: r.get("event") == "http_listening")["url"]
                     for m, d in daemons.items()}
        self.served: dict[str, int | None] = dict.fromkeys(daemons)
        self.polls = 0
        self.failures: list[str] = []
        self.paused: set[str] = set()
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._halt.is_set():
            for member, url in self.urls.items():
                if member in self.paused:
                    continue
                try:
                    version = fetch_models(url)["models"][0]["served_version"]
                except Exception as exc:
                    if member not in self.paused:
                        self.failures.append(f"{member}: {type(exc).__name__}: {exc}")
                    continue
                if version is None and self.served[member] is not None:
                    self.failures.append(f"{member}: served nothing after v{self.served[member]}")
                self.served[member] = version
                self.polls += 1
            self._halt.wait(0.05)

    def until(self, want: dict[str, int], what: str) -> None:
        wait_for(lambda: all(self.served[m] == v for m, v in want.items()),
                 f"{what}: want {want}, have {self.served}; failures {self.failures[:3]}")

    def stop(self) -> None:
        self._halt.set()
        self._thread.join(30)


@pytest.fixture
def fleet(tmp_path: Path, s3_url: str) -> Iterator[Fleet]:
    members = split_members("m", PERCENT)
    daemons: dict[str, DaemonProcess] = {}
    try:
        for member in members:
            home = tmp_path / member
            home.mkdir()
            config = home / "config.yaml"
            config.write_text(
                f"models:\n  - name: m\n    base_path: {s3_url}\n"
                f"remote:\n  cache_dir: {home / 'cache'}\n  poll_interval: 0.5\n"
                "http:\n  listen: 127.0.0.1:0\nlogging:\n  format: json\n"
                "service:\n  fleet_status: true\n")
            daemons[member] = DaemonProcess(config, home, notify=False, env={
                "MODELSWAP_MEMBER": member, "PYTHONPATH": str(DAEMON),
                "TF_CPP_MIN_LOG_LEVEL": "2"})
        running = Fleet(daemons)
        yield running
        running.stop()
        for daemon in daemons.values():
            daemon.send(signal.SIGCONT)
            assert daemon.stop() == 0
    finally:
        for daemon in daemons.values():
            daemon.close()


def status_shows(url: str, want: dict[str, int], code: int = 0, *args: str) -> bool:
    """`modelswap fleet status URL` exits `code` and lists each member with its version."""
    found, out = cli("fleet", "status", url, *args)
    return found == code and {m: row[0] for m, row in table(out).items()} == {
        m: str(v) for m, v in want.items()}


def test_three_daemons_follow_publishes_and_rollouts(fleet: Fleet, s3_url: str,
                                                     exports: Exports) -> None:
    members = sorted(fleet.daemons)
    canary = {m for m in members if serves_canary(m, "m", PERCENT)}
    assert 0 < len(canary) < len(members)

    publish(exports.get(1.0), s3_url, 1)
    fleet.until(dict.fromkeys(members, 1), "every daemon serves v1")
    wait_for(lambda: status_shows(s3_url, dict.fromkeys(members, 1)), "fleet status: all v1")

    publish(exports.get(2.0), s3_url, 2)  # a publish reaches every member
    fleet.until(dict.fromkeys(members, 2), "every daemon serves v2 after the publish")
    wait_for(lambda: status_shows(s3_url, dict.fromkeys(members, 2)), "fleet status: all v2")

    assert cli("rollout", s3_url, "--stable", "2")[0] == 0  # pin, then publish the candidate
    publish(exports.get(3.0), s3_url, 3)
    code, out = cli("rollout", s3_url, "--canary", "3", "--percent", str(PERCENT))
    assert code == 0 and "stable 2, canary 3 on 34%" in out, out
    assert f"({', '.join(sorted(canary))})" in out  # the members it puts on the canary
    split = {m: 3 if m in canary else 2 for m in members}
    fleet.until(split, "the hashed members serve the canary, the others stable")
    wait_for(lambda: status_shows(s3_url, split), "fleet status: the canary split")
    notes = table(cli("fleet", "status", s3_url)[1])
    assert {m for m, (_, note) in notes.items() if note.startswith("canary")} == canary

    assert cli("rollout", s3_url, "--abort")[0] == 0
    fleet.until(dict.fromkeys(members, 2), "abort: every daemon back on v2")
    assert cli("rollout", s3_url, "--canary", "3", "--percent", str(PERCENT))[0] == 0
    fleet.until(split, "the canary again")
    mirrored = {m: [r for r in d.logs if r.get("event") == "remote_mirrored"]
                for m, d in fleet.daemons.items()}  # before the promote: only the canary
    assert {m for m, found in mirrored.items() if any(r["version"] == 3 for r in found)} \
        == canary  # members fetched v3 (the pin kept the others from downloading it)
    assert cli("rollout", s3_url, "--promote")[0] == 0
    fleet.until(dict.fromkeys(members, 3), "promote: every daemon on v3")
    wait_for(lambda: status_shows(s3_url, dict.fromkeys(members, 3)), "fleet status: all v3")

    frozen = members[0]  # a member that cannot follow: the view says so, and exits 1
    fleet.paused.add(frozen)
    fleet.daemons[frozen].send(signal.SIGSTOP)
    assert cli("rollout", s3_url, "--stable", "2")[0] == 0  # a fleet-wide rollback
    others = {m: 2 for m in members if m != frozen}
    fleet.until(others, "the rollback on the members that run")
    lagging = {**others, frozen: 3}
    wait_for(lambda: status_shows(s3_url, lagging, 1, "--grace", "0"), "status exit 1")
    code, out = cli("fleet", "status", s3_url, "--grace", "0")
    problems = [line for line in out.splitlines() if line.startswith("problem:")]
    assert code == 1 and len(problems) == 1, out
    assert f"{frozen}: serves m v3, the rollout gives it v2" in problems[0]
    assert status_shows(s3_url, lagging, 0)  # within the default grace: not a problem yet
    code, out = cli("fleet", "status", s3_url, "--stale-after", "0")
    assert code == 1 and f"problem: {frozen}: heartbeat" in out, out

    fleet.daemons[frozen].send(signal.SIGCONT)
    fleet.paused.discard(frozen)
    fleet.until(dict.fromkeys(members, 2), "the thawed member follows the rollback")
    wait_for(lambda: status_shows(s3_url, dict.fromkeys(members, 2), 0, "--grace", "0"),
             "fleet status converged: exit 0")
    assert fleet.failures == [] and fleet.polls > 0
    logs: Any = [d.logs for d in fleet.daemons.values()]
    assert FLEET_SECRET not in repr(logs)
    for daemon in fleet.daemons.values():  # the mirror followed the rollout, no reload
        assert daemon.count(lambda r: r.get("event") == "remote_rollout_copied") >= 4
    print(f"{fleet.polls} status polls, 0 failed; canary members {sorted(canary)}")
