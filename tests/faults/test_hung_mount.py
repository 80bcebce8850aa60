"""A base path on a mount that hangs (a real FUSE file system that blocks every lookup,
like a dead NFS server): the other model keeps swapping, the daemon stays healthy, and
the hung model's gate jobs are abandoned after `watch.gate_timeout`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import TIMEOUT, Consumer, Events, Exports, answer, wait_until
from modelswap import ModelSwap


def mounted(path: Path) -> bool:
    with open("/proc/self/mounts", encoding="utf-8") as f:
        return any(line.split()[1] == str(path) for line in f)


@pytest.fixture
def hung_mount(tmp_path: Path) -> Iterator[Path]:
    """A folder whose contents never answer until the test ends."""
    if not os.path.exists("/dev/fuse") or shutil.which("umount") is None:
        pytest.skip("no FUSE on this machine")
    pytest.importorskip("fuse", reason="fusepy (libfuse2) is not installed")
    point, release = tmp_path / "hung", tmp_path / "release"
    point.mkdir()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("hangfs.py")),
                             str(point), str(release)], stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: mounted(point) or proc.poll() is not None, 10, "the FUSE mount")
    except AssertionError:
        proc.kill()
        raise
    if not mounted(point):
        pytest.skip(f"cannot mount FUSE here: {proc.stderr.read() if proc.stderr else ''}")
    try:
        yield point
    finally:
        release.touch()  # lets every blocked lookup go (they answer ENOENT now)
        # lazy: detached at once even while a lookup is still on its way out, so no later
        # walk of the temp folders (pytest's own clean-up) can ever step into it
        subprocess.run(["umount", "-l", str(point)], check=False)
        proc.terminate()  # a killed FUSE server fails whatever still waits on it
        try:
            proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(TIMEOUT)


def test_hung_mount_stalls_only_its_own_model(
        tmp_path: Path, exports: Exports, hung_mount: Path,
        run_swap: Callable[..., tuple[ModelSwap, Events]]) -> None:
    good = tmp_path / "good"
    good.mkdir()
    exports.publish(good, 1, 1.0)
    swap, _events = run_swap(f"""
models:
  - {{name: stuck, base_path: {hung_mount / "models" / "stuck"}}}
  - {{name: good, base_path: {good}}}
watch: {{gate_timeout: 1s, mode: inotify}}
""")
    swap.wait_until_available("good", timeout=TIMEOUT)
    consumer = Consumer(swap, {1: answer(1.0), 2: answer(2.0)}, "good")
    consumer.start()
    wait_until(lambda: swap._coordinator.counters.slow_scans >= 1, what="a gate job abandoned")
    exports.publish(good, 2, 2.0)
    assert swap.wait_until_available("good", version=2, timeout=TIMEOUT) == 2
    wait_until(lambda: consumer.calls.get(2, 0) > 5, what="v2 answers")
    assert swap.healthy()  # the coordinator loop and the watchers kept going
    consumer.stop()
    assert consumer.failures == []
    assert swap.status()["stuck"] == ()
