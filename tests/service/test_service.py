"""The daemon as a service: sd_notify, SIGHUP reloads, graceful stop, hooks, consumers."""

from __future__ import annotations

import os
import signal
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Exports, export_tf1, wait_until
from daemon import DaemonProcess


@pytest.fixture
def daemons() -> Iterator[list[DaemonProcess]]:
    started: list[DaemonProcess] = []
    yield started
    for d in started:
        d.close()


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def model_yaml(name: str, base: Path, extra: str = "") -> str:
    return f"  - name: {name}\n    base_path: {base}\n" + "".join(
        f"    {line}\n" for line in extra.splitlines() if line)


def test_notify_ready_status_watchdog_reload_stopping(tmp_path: Path, exports: Exports,
                                                      daemons: list[DaemonProcess]) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for base in (a, b):
        base.mkdir()
        exports.publish(base, 1, 1.0)
    exports.publish(a, 7, 7.0)
    config = write(tmp_path / "c.yaml", "models:\n" + model_yaml("a", a) + model_yaml("b", b)
                   + "service: {require: all}\n")
    d = DaemonProcess(config, tmp_path, env={"WATCHDOG_USEC": "400000"})
    daemons.append(d)
    ready = d.wait_note(lambda n: n.get("READY") == "1", what="READY=1")
    assert ready["STATUS"] == "2/2 models available; a v7, b v1"
    # READY comes after both models are available (require: all): the STATUS says so
    d.wait_note(lambda n: n.get("WATCHDOG") == "1", what="WATCHDOG=1")
    exports.publish(b, 2, 2.0)
    d.wait_note(lambda n: n.get("STATUS") == "2/2 models available; a v7, b v2",
                what="STATUS after the swap")
    d.send(signal.SIGHUP)
    reloading = d.wait_note(lambda n: n.get("RELOADING") == "1", what="RELOADING=1")
    assert int(reloading["MONOTONIC_USEC"]) > 0
    d.wait_log(lambda r: r.get("event") == "reloaded")
    assert d.stop() == 0
    stopping = d.wait_note(lambda n: n.get("STOPPING") == "1", what="STOPPING=1")
    assert stopping["STATUS"] == "stopping on SIGTERM"
    assert d.logs[-1]["event"] == "stopped"


def test_watchdog_pings_only_for_this_pid(tmp_path: Path, exports: Exports,
                                          daemons: list[DaemonProcess]) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    config = write(tmp_path / "c.yaml", "models:\n" + model_yaml("m", base))
    d = DaemonProcess(config, tmp_path, env={"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"})
    daemons.append(d)
    d.wait_note(lambda n: n.get("READY") == "1")
    d.wait_state("m", 1, "AVAILABLE")
    exports.publish(base, 2, 2.0)  # let time pass measurably: a swap, then the status
    d.wait_note(lambda n: "m v2" in n.get("STATUS", ""))
    assert d.stop() == 0
    assert not any("WATCHDOG" in n for n in d.notes)


def test_sighup_adds_removes_changes_models(tmp_path: Path, exports: Exports,
                                            daemons: list[DaemonProcess]) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for base in (a, b, c):
        base.mkdir()
        for v in (1, 2):
            exports.publish(base, v, float(v))
    path = tmp_path / "c.yaml"
    write(path, "models:\n" + model_yaml("a", a) + model_yaml("b", b))
    d = DaemonProcess(path, tmp_path)
    daemons.append(d)
    d.wait_note(lambda n: n.get("READY") == "1")
    d.wait_state("a", 2, "AVAILABLE")
    d.wait_state("b", 2, "AVAILABLE")  # the log pipe can lag behind the notify socket
    assert d.count(lambda r: r.get("state") == "LOADING") == 2
    # a: untouched; b: removed; c: added; and a's policy is unchanged
    write(path, "models:\n" + model_yaml("a", a) + model_yaml("c", c, "labels: {old: 1}"))
    d.send(signal.SIGHUP)
    d.wait_state("c", 2, "AVAILABLE")
    d.wait_state("c", 1, "AVAILABLE")  # the labelled version is kept loaded too
    d.wait_state("b", 2, "END")
    assert d.count(lambda r: r.get("model") == "a" and r.get("state") == "LOADING") == 1
    # change a's policy: latest 2 loads v1 beside v2 without reloading v2
    write(path, "models:\n" + model_yaml("a", a, "version_policy: {latest: 2}")
          + model_yaml("c", c, "labels: {old: 1}"))
    d.send(signal.SIGHUP)
    d.wait_state("a", 1, "AVAILABLE")
    assert d.count(lambda r: r.get("model") == "a" and r.get("version") == 2
                   and r.get("state") == "LOADING") == 1
    # change c's tags: its versions reload under the new tag set, serving meanwhile
    export_tf1(c / "3", {("serve", "gpu"): 30.0})
    write(path, "models:\n" + model_yaml("a", a, "version_policy: {latest: 2}")
          + model_yaml("c", c, "tags: [serve, gpu]"))
    d.send(signal.SIGHUP)
    d.wait_state("c", 3, "AVAILABLE")
    d.wait_state("c", 2, "END")
    assert d.stop() == 0


def test_only_model_broken_exits_nonzero_without_ready(tmp_path: Path,
                                                       daemons: list[DaemonProcess]) -> None:
    """require: any, and the one model's only version has the wrong tags: no READY=1; after
    start_timeout the daemon exits non-zero with one line naming each model's state."""
    broken, empty = tmp_path / "broken", tmp_path / "empty"
    export_tf1(broken / "1", {("serve", "gpu"): 0.0})
    empty.mkdir()
    path = write(tmp_path / "c.yaml", "models:\n" + model_yaml("broken", broken)
                 + model_yaml("empty", empty) + "service: {require: any, start_timeout: 3s}\n")
    d = DaemonProcess(path, tmp_path)
    daemons.append(d)
    assert d.proc.wait(120) == 3
    failed = d.wait_log(lambda r: r.get("event") == "start_failed")
    reason = failed["reason"]
    assert reason.startswith("not ready after 3s (require: any): 0/2 models available; ")
    assert "broken ERROR (v1: TagMismatch: " in reason
    assert "empty waiting (no version folder found)" in reason and "\n" not in reason
    assert not any("READY" in n for n in d.notes)
    d.wait_note(lambda n: n.get("STATUS") == reason[:1000], what="the reason in STATUS")
    assert "Traceback" not in d.stderr


def test_require_none_is_ready_with_nothing_served(tmp_path: Path,
                                                   daemons: list[DaemonProcess]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    path = write(tmp_path / "c.yaml", "models:\n" + model_yaml("empty", empty)
                 + "service: {require: none}\n")
    d = DaemonProcess(path, tmp_path)
    daemons.append(d)
    note = d.wait_note(lambda n: n.get("READY") == "1")
    assert note["STATUS"] == "0/1 models available; empty waiting"
    assert d.stop() == 0


def test_sighup_with_broken_config_keeps_serving(tmp_path: Path, exports: Exports,
                                                 daemons: list[DaemonProcess]) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    path = write(tmp_path / "c.yaml", "models:\n" + model_yaml("m", base))
    d = DaemonProcess(path, tmp_path)
    daemons.append(d)
    d.wait_note(lambda n: n.get("READY") == "1")
    path.write_text(f"models:\n  - name: m\n    base_path: {base}\n    version_policy: 7\n")
    d.send(signal.SIGHUP)
    failed = d.wait_log(lambda r: r.get("event") == "reload_failed")
    assert failed["file"] == str(path) and failed["line"] == 4
    note = d.wait_note(lambda n: "reload failed" in n.get("STATUS", ""))
    assert note["READY"] == "1" and str(path) in note["STATUS"]
    exports.publish(base, 2, 2.0)  # still watching and swapping on the old config
    d.wait_state("m", 2, "AVAILABLE")
    assert d.stop() == 0


def test_sigint_stops_cleanly(tmp_path: Path, exports: Exports,
                              daemons: list[DaemonProcess]) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    path = write(tmp_path / "c.yaml", "models:\n" + model_yaml("m", base))
    d = DaemonProcess(path, tmp_path, notify=False)
    daemons.append(d)
    d.wait_state("m", 1, "AVAILABLE")
    assert d.stop(signal.SIGINT) == 0
    assert d.logs[-1]["event"] == "stopped"


HOOKS = '''
import json, os, time

OUT = os.environ["HOOK_OUT"]

def record(event):
    with open(OUT, "a") as f:
        f.write(json.dumps([event.model, event.version, event.state.value]) + "\\n")

def explode(event):
    raise RuntimeError("hook went wrong")

def consume(swap, stop):
    while not stop.is_set():
        try:
            with swap.acquire("m") as served:
                with open(OUT + ".consumer", "a") as f:
                    f.write(f"{served.version}\\n")
        except LookupError:
            pass
        stop.wait(0.05)

RUNS = []

def flaky(swap, stop):
    RUNS.append(1)
    if len(RUNS) < 3:
        raise ValueError(f"consumer crash {len(RUNS)}")
    stop.wait()
'''


def test_hooks_and_consumers_run_in_the_daemon(tmp_path: Path, exports: Exports,
                                               daemons: list[DaemonProcess]) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "myhooks.py").write_text(HOOKS)
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    out = tmp_path / "hooks.out"
    path = write(tmp_path / "c.yaml", "models:\n" + model_yaml("m", base) + f"""
hooks:
  on_loading: ["myhooks:record"]
  on_available: ["myhooks:explode", "myhooks:record"]
  on_retired: ["myhooks:record"]
consumers: ["myhooks:consume", "myhooks:flaky"]
python_path: [{code}]
service: {{stop_timeout: 5s}}
""")
    d = DaemonProcess(path, tmp_path, env={"HOOK_OUT": str(out)})
    daemons.append(d)
    d.wait_state("m", 1, "AVAILABLE")
    consumed = Path(str(out) + ".consumer")
    wait_until(lambda: consumed.exists() and "1" in consumed.read_text().split(),
               what="the consumer served v1")
    exports.publish(base, 2, 2.0)
    d.wait_state("m", 1, "END")
    failed = d.wait_log(lambda r: r.get("event") == "hook_failed")
    assert failed["hook"] == "myhooks:explode" and "hook went wrong" in failed["exception"]
    crash = d.wait_log(lambda r: r.get("event") == "consumer_failed"
                       and "consumer crash 2" in r.get("exception", ""))
    assert crash["consumer"] == "myhooks:flaky"
    d.wait_log(lambda r: r.get("event") == "consumer_started" and r.get("consumer")
               == "myhooks:flaky" and d.count(lambda x: x.get("consumer") == "myhooks:flaky"
                                              and x.get("event") == "consumer_started") >= 3)
    assert d.stop() == 0
    lines = out.read_text().splitlines()
    for expected in (["m", 1, "LOADING"], ["m", 1, "AVAILABLE"], ["m", 2, "AVAILABLE"],
                     ["m", 1, "UNLOADING"]):
        assert str(expected).replace("'", '"') in lines
    seen = set(Path(str(out) + ".consumer").read_text().split())
    assert {"1", "2"} <= seen
    assert d.count(lambda r: r.get("event") == "consumer_stopped") == 2


def test_bad_hook_is_a_config_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = write(tmp_path / "c.yaml", f"""\
        models:
          - name: m
            base_path: {tmp_path}
        hooks:
          on_error: ["os:getcwd", "no_such_module_xyz:fn"]
        """)
    result = subprocess.run([sys.executable, "-m", "modelswap", "run", "--config",
                             str(path)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert f"{path}:5: hooks.on_error[1]: cannot load 'no_such_module_xyz:fn'" in result.stderr
    assert "Traceback" not in result.stderr
    check = subprocess.run([sys.executable, "-m", "modelswap", "check", "--config",
                            str(path)], capture_output=True, text=True, timeout=60, check=False)
    assert check.returncode == 2 and "no_such_module_xyz" in check.stderr
    os.environ.pop("HOOK_OUT", None)


WEDGE = '''
import threading, time

def wedge(swap, stop):
    """Block the coordinator thread for good, like a bug would."""
    with swap.acquire("m"):
        pass
    swap._coordinator.call(lambda: time.sleep(3600))
    stop.wait()
'''


def test_wedged_coordinator_stops_watchdog_pings(tmp_path: Path, exports: Exports,
                                                 daemons: list[DaemonProcess]) -> None:
    (tmp_path / "wedge.py").write_text(WEDGE)
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    path = write(tmp_path / "c.yaml", "models:\n" + model_yaml("m", base)
                 + f"consumers: ['wedge:wedge']\npython_path: [{tmp_path}]\n"
                 + "service: {stop_timeout: 1s}\n")
    d = DaemonProcess(path, tmp_path, env={"WATCHDOG_USEC": "400000"})
    daemons.append(d)
    d.wait_note(lambda n: n.get("WATCHDOG") == "1")
    d.wait_log(lambda r: r.get("event") == "watchdog_withheld")
    pings = sum(1 for n in d.notes if n.get("WATCHDOG"))
    d.wait_log(lambda r: r.get("event") == "watchdog_withheld"
               and d.count(lambda x: x.get("event") == "watchdog_withheld") >= 3)
    assert sum(1 for n in d.notes if n.get("WATCHDOG")) == pings
    d.close()


STUBBORN = '''
def ignore_stop(swap, stop):
    import time
    while True:
        time.sleep(1)
'''


def test_second_sigint_exits_at_once(tmp_path: Path, exports: Exports,
                                     daemons: list[DaemonProcess]) -> None:
    (tmp_path / "stubborn.py").write_text(STUBBORN)
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    path = write(tmp_path / "c.yaml", "models:\n" + model_yaml("m", base)
                 + f"consumers: ['stubborn:ignore_stop']\npython_path: [{tmp_path}]\n"
                 + "service: {stop_timeout: 1h}\n")
    d = DaemonProcess(path, tmp_path)
    daemons.append(d)
    d.wait_state("m", 1, "AVAILABLE")
    d.send(signal.SIGINT)
    d.wait_log(lambda r: r.get("event") == "stopping")
    assert d.stop(signal.SIGINT) == 130
    assert "second SIGINT" in d.stderr or d.stderr == ""
