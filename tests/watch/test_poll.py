"""Poll mode: hints only on a change of the base path, or while a version is unsettled.

The Poller runs its real threads over real folders; the end-to-end cases run the daemon's
pipeline in poll mode with the rescan safety net pushed out of reach (1 h), so only the
poll hints can make a version load.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

from conftest import Exports, wait_until, yaml_for
from modelswap.watch.poll import Poller, signature


class Recorder:
    """The hint callback and the `settled` callback of a Poller under test."""

    def __init__(self) -> None:
        self.hints: list[str] = []
        self.looks = 0  # calls of `settled`: one per model and tick without a change
        self.settled = True
        self.lock = threading.Lock()

    def hint(self, name: str, path: Path, moved_to: bool) -> None:
        with self.lock:
            self.hints.append(name)

    def is_settled(self, name: str) -> bool:
        with self.lock:
            self.looks += 1
            return self.settled

    def count(self) -> tuple[int, int]:
        with self.lock:
            return len(self.hints), self.looks


def test_signature_changes_with_entries_not_with_file_writes(tmp_path: Path) -> None:
    (tmp_path / "1").mkdir()
    before = signature(tmp_path)
    (tmp_path / "1" / "saved_model.pb").write_bytes(b"x")  # inside a version: not seen here
    assert signature(tmp_path) == before
    (tmp_path / "2").mkdir()
    assert signature(tmp_path) != before
    assert signature(tmp_path / "missing") is None


def test_poller_hints_on_change_and_while_unsettled(tmp_path: Path) -> None:
    rec = Recorder()
    poller = Poller(rec.hint, rec.is_settled, 0.02)
    poller.assign({"m": (tmp_path, tmp_path.stat().st_dev)})
    try:
        # the first tick hints (a model just placed), then settled and unchanged: silence
        wait_until(lambda: rec.count()[1] >= 3, what="three quiet ticks")
        quiet = rec.count()[0]
        assert quiet >= 1
        seen = rec.count()[1]
        wait_until(lambda: rec.count()[1] >= seen + 5, what="five more quiet ticks")
        assert rec.count()[0] == quiet

        (tmp_path / "2").mkdir()  # a version renamed in changes the base path
        wait_until(lambda: rec.count()[0] > quiet, what="a hint for the new folder")

        with rec.lock:
            rec.settled = False  # a version waits: every tick hints
        hinted = rec.count()[0]
        wait_until(lambda: rec.count()[0] >= hinted + 5, what="a hint every tick")
    finally:
        poller.stop()


def test_poller_threads_per_device_end_when_unassigned(tmp_path: Path) -> None:
    rec = Recorder()
    poller = Poller(rec.hint, rec.is_settled, 0.02)
    poller.assign({"a": (tmp_path, 1), "b": (tmp_path, 2)})
    try:
        wait_until(lambda: rec.hints.count("a") >= 1 and rec.hints.count("b") >= 1,
                   what="both devices polled")
        poller.assign({"a": (tmp_path, 1)})
        wait_until(lambda: [t.name for t in threading.enumerate()
                            if t.name == "modelswap-poll-2"] == [], what="device 2's thread gone")
        assert any(t.name == "modelswap-poll-1" for t in threading.enumerate())
    finally:
        poller.stop()


def polled_swap(base: Path, exports: Exports, run_swap: Any, rescan: str) -> Any:
    """A started swap polling `base` every 50 ms, serving its version 1."""
    base.mkdir()
    exports.publish(base, 1, 1.0)
    swap, _ = run_swap(yaml_for(base, top="watch: {mode: poll, poll_interval: 50ms, "
                                       f"rescan_interval: {rescan}}}"))
    swap.wait_until_available("m", timeout=60)
    return swap


def test_poll_mode_loads_a_version_whose_pb_comes_last(tmp_path: Path, exports: Exports,
                                                       run_swap: Any) -> None:
    """The version folder appears first (a base path change); its pb is written later,
    which changes only the version folder: the model is unsettled, so polling goes on."""
    base = tmp_path / "m"
    swap = polled_swap(base, exports, run_swap, rescan="1h")
    source = exports.get(2.0)
    (base / "2").mkdir()
    shutil.copytree(source / "variables", base / "2" / "variables")
    wait_until(lambda: any(v.version == 2 for v in swap.status()["m"]), timeout=30,
               what="version 2 seen waiting")
    hints = swap._coordinator.counters.events  # the base path no longer changes, yet:
    wait_until(lambda: swap._coordinator.counters.events >= hints + 3, timeout=30,
               what="poll hints go on while version 2 waits")
    shutil.copyfile(source / "saved_model.pb", base / "2" / "saved_model.pb")
    swap.wait_until_available("m", version=2, timeout=60)
    with swap.acquire("m") as served:
        assert served.version == 2


def test_poll_mode_sees_a_version_renamed_in_when_settled(tmp_path: Path, exports: Exports,
                                                          run_swap: Any) -> None:
    base = tmp_path / "m"
    swap = polled_swap(base, exports, run_swap, rescan="1h")
    wait_until(lambda: swap._coordinator.published.settled("m"), what="model settled")
    exports.publish(base, 2, 2.0)
    swap.wait_until_available("m", version=2, timeout=60)
    (base / "2").rename(base / ".gone")  # a version removed: the policy falls back to 1
    shutil.rmtree(base / ".gone")
    wait_until(lambda: [v.version for v in swap.status()["m"]
                        if v.state.value == "AVAILABLE"] == [1], timeout=60,
               what="version 1 serving again")


def test_rescans_skip_a_polled_model_with_nothing_to_judge(tmp_path: Path, exports: Exports,
                                                           run_swap: Any) -> None:
    """Its one version is loaded and its base path unchanged: a rescan could find nothing
    the poll ticks would not, so no gate job runs for it (an idle fleet of 1,000 polled
    models costs no more than listing them); a new version is still seen by the poll."""
    base = tmp_path / "m"
    swap = polled_swap(base, exports, run_swap, rescan="100ms")
    coordinator = swap._coordinator
    wait_until(lambda: coordinator.published.settled("m"), what="model settled")
    record = coordinator._models["m"]
    wait_until(lambda: not record.scanning, what="the last gate job done")
    rescans = coordinator.counters.rescans
    wait_until(lambda: coordinator.counters.rescans >= rescans + 2 and not record.scanning,
               what="two rescans (the poll's last hints are done)")
    jobs = record.serial
    wait_until(lambda: coordinator.counters.rescans >= rescans + 6, what="four more rescans")
    assert record.serial == jobs
    exports.publish(base, 2, 2.0)
    swap.wait_until_available("m", version=2, timeout=60)
