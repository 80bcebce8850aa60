"""Replica cache leases (fleet/lease.py): real folders, real `flock`s, and a real child
process whose death frees its lease."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelswap.fleet.lease import LEASE, claim, sweep

HOLD = """
import sys
from pathlib import Path
from modelswap.fleet.lease import claim
lease = claim(Path(sys.argv[1]))
print("held", flush=True)
sys.stdin.read()  # until the test closes our stdin
"""


def child_holding(folder: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_dead_replicas_folder_goes_a_live_ones_stays(tmp_path: Path) -> None:
    replicas = tmp_path / "replicas"
    alive, dead, starting = replicas / "alive", replicas / "dead", replicas / "starting"
    holder = child_holding(alive)
    victim = child_holding(dead)
    (dead / "m" / "3").mkdir(parents=True)
    (dead / "m" / "3" / "saved_model.pb").write_bytes(b"x" * 1000)
    victim.kill()  # no shutdown: the kernel drops its flock
    victim.wait()
    starting.mkdir()  # a replica between mkdir and its lease
    try:
        mine = claim(replicas / "me")
        try:
            assert sweep(replicas, keep=replicas / "me") == [dead]
            assert alive.is_dir() and starting.is_dir() and (replicas / "me" / LEASE).is_file()
            assert not dead.exists()
            assert sweep(replicas, keep=replicas / "me") == []  # nothing else to remove
        finally:
            mine.close()
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait()
    assert sweep(replicas) == [alive, replicas / "me"]  # both leases given up now
    assert sorted(p.name for p in replicas.iterdir()) == ["starting"]


def test_claim_leaves_one_lease_and_holds_it(tmp_path: Path) -> None:
    lease = claim(tmp_path / "r")
    try:
        assert [p.name for p in (tmp_path / "r").iterdir()] == [LEASE]  # no temp file left
        fd = os.open(tmp_path / "r" / LEASE, os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    finally:
        lease.close()
