"""The file system misbehaving: folders vanishing or moving mid-load, a base path deleted,
unreadable or looping, odd version names, and crowds of non-model files."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import Exports, wait_until
from faults import usercode
from faults.helpers import CheckedDaemon, Scene, daemon_config, no_failures
from modelswap import State

HELD = "warmup: faults.usercode:held_warmup\nwarmup_timeout: 2m"


@pytest.fixture
def held() -> Iterator[usercode.Gate]:
    gate = usercode.WARMUP
    yield gate
    gate.armed.clear()
    gate.release()


def test_version_folder_deleted_during_its_load(scene: Callable[..., Scene],
                                                held: usercode.Gate) -> None:
    s = scene(HELD)
    held.arm()
    s.publish(2)
    assert held.entered.wait(60)  # v2 is loading (held in its warmup)
    shutil.rmtree(s.base / "2")
    record = s.swap._coordinator._models["m"]
    wait_until(lambda: record.scan is not None and 2 not in (record.scan.listing or {}),
               what="the coordinator to see v2 gone")
    s.keeps_answering(1)
    held.release()
    wait_until(lambda: s.status(2) is None, what="v2's load discarded")
    assert State.AVAILABLE not in s.events.states(2)  # discarded unseen
    s.keeps_answering(1)
    s.publish(3)
    s.serves(3)
    s.finish()


def test_version_folder_renamed_during_its_load(scene: Callable[..., Scene],
                                                held: usercode.Gate) -> None:
    s = scene(HELD)
    held.arm()
    s.publish(2)
    assert held.entered.wait(60)
    os.replace(s.base / "2", s.base / "5")  # v2's files are version 5 now
    s.expect(5, 2.0)
    s.serves(5)  # loads on the other loader thread while v2's load is still stuck
    held.release()
    wait_until(lambda: s.status(2) is None, what="v2's load discarded")
    assert State.AVAILABLE not in s.events.states(2)
    assert [st.version for st in s.swap.status()["m"]] == [5]
    s.keeps_answering(5)
    s.finish()


def test_base_path_deleted_and_recreated(scene: Callable[..., Scene]) -> None:
    s = scene()
    shutil.rmtree(s.base)
    s.keeps_answering(1)  # its files are gone; the loaded model still answers
    s.base.mkdir()
    s.keeps_answering(1)
    s.publish(2)
    s.serves(2)
    s.finish()


def test_symlink_loop_named_like_a_version(scene: Callable[..., Scene]) -> None:
    """`2 -> 2`: stat() fails with ELOOP. It is no version folder (like a dangling
    link), and must not make the whole base path unreadable."""
    s = scene()
    os.symlink("2", s.base / "2")
    s.publish(3)
    s.serves(3)
    assert [st.version for st in s.swap.status()["m"]] == [3]
    s.finish()


def test_base_path_replaced_by_a_symlink_loop(scene: Callable[..., Scene]) -> None:
    s = scene(top="watch: {rescan_interval: 300ms}\n")
    moved = s.base.with_name("moved-away")
    os.replace(s.base, moved)
    os.symlink(s.base.name, s.base)  # base -> base
    record = s.swap._coordinator._models["m"]
    wait_until(lambda: not record.base_ok, what="the loop noticed (base_path_unavailable)")
    s.keeps_answering(1)
    os.unlink(s.base)
    os.replace(moved, s.base)
    s.publish(2)
    s.serves(2)
    s.finish()


def test_version_numbers_past_int64_are_ignored(scene: Callable[..., Scene]) -> None:
    s = scene()
    s.exports.publish(s.base, str(2**63), 9.0)  # not a version: ignored
    s.exports.publish(s.base, str(2**63 - 1), 7.0)  # the largest version there is
    s.expect(2**63 - 1, 7.0)
    s.serves(2**63 - 1)
    assert [st.version for st in s.swap.status()["m"]] == [2**63 - 1]
    s.finish()


def test_001_beside_0001(scene: Callable[..., Scene]) -> None:
    s = scene()
    coordinator = s.swap._coordinator
    paused, resume = threading.Event(), threading.Event()

    def pause() -> None:  # both folders appear in one look at the disk
        paused.set()
        resume.wait(60)

    coordinator.call(pause)
    assert paused.wait(60)
    s.exports.publish(s.base, "002", 8.0)
    s.exports.publish(s.base, "0002", 2.0)  # the first name in sort order wins
    resume.set()
    s.expect(2, 2.0)
    s.serves(2)
    [status] = [st for st in s.swap.status()["m"] if st.version == 2]
    assert status.path == s.base / "0002"
    s.finish()


def test_ten_thousand_non_model_files(scene: Callable[..., Scene]) -> None:
    s = scene()
    for i in range(10_000):
        (s.base / f"junk-{i:05d}.txt").write_bytes(b"")
    (s.base / "notes").mkdir()
    s.keeps_answering(1)
    s.publish(2)
    s.serves(2)
    assert [st.version for st in s.swap.status()["m"]] == [2]
    s.finish()


@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs setpriv (util-linux)")
def test_no_read_permission(tmp_path: Path, exports: Exports,
                            daemons: list[CheckedDaemon]) -> None:
    """Root reads any folder, so the daemon runs without CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH (setpriv): mode 000 stops it like any other user. Unreadable: the
    base path, then a version's variables/, then the base path's parent."""
    models = tmp_path / "models"
    base = models / "m"
    base.mkdir(parents=True)
    exports.publish(base, 1, 1.0)
    config = daemon_config(tmp_path / "c.yaml", {"m": base},
                           top="watch: {rescan_interval: 500ms}\n")
    launcher = ["setpriv", "--bounding-set=-dac_override,-dac_read_search",
                "--inh-caps=-dac_override,-dac_read_search", sys.executable]
    d = CheckedDaemon(config, tmp_path, launcher=launcher)
    daemons.append(d)
    d.wait_state("m", 1, "AVAILABLE")
    d.wait_answers(1)

    def unavailable() -> int:
        return d.count(lambda r: r.get("event") == "base_path_unavailable"
                       and "Permission denied" in r.get("error", ""))

    with chmod(base, 0):
        exports.publish(base, 2, 2.0)  # root (the test) still writes it
        d.wait_log(lambda r: unavailable() >= 1, what="base_path_unavailable")
        d.wait_answers(1)
    d.wait_state("m", 2, "AVAILABLE")
    d.wait_answers(2)

    staging = tmp_path / "v3"
    shutil.copytree(exports.get(3.0), staging)
    os.chmod(staging / "variables", 0)
    os.replace(staging, base / "3")
    waiting = d.wait_state("m", 3, "WAITING")
    assert "variables/variables.index unreadable: Permission denied" in waiting["error"]
    d.wait_answers(2)
    os.chmod(base / "3" / "variables", 0o755)
    d.wait_state("m", 3, "AVAILABLE")

    with chmod(models, 0):
        d.wait_log(lambda r: unavailable() >= 2, what="second base_path_unavailable")
        exports.publish(base, 4, 4.0)
        d.wait_answers(3)
    d.wait_state("m", 4, "AVAILABLE")
    d.wait_answers(4)
    assert d.stop() == 0
    assert "Traceback" not in d.stderr, d.stderr
    no_failures(d.report())


@contextlib.contextmanager
def chmod(path: Path, mode: int) -> Iterator[None]:
    old = path.stat().st_mode & 0o7777
    os.chmod(path, mode)
    try:
        yield
    finally:
        os.chmod(path, old)
