"""The real daemon under process faults: SIGKILL in the middle of a load, SIGHUP storms,
and an inotify queue overflow (lost events)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

from conftest import TIMEOUT, Exports, wait_until
from faults.helpers import CheckedDaemon, daemon_config, no_failures


def http_url(d: CheckedDaemon, route: str) -> str:
    listening = d.wait_log(lambda r: r.get("event") == "http_listening")
    return f"http://127.0.0.1:{listening['port']}{route}"


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.load(answer)


def metric(url: str, name: str) -> float:
    with urllib.request.urlopen(url, timeout=10) as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} in {url}")


def test_sigkill_during_a_load_then_restart(tmp_path: Path, exports: Exports,
                                           daemons: list[CheckedDaemon]) -> None:
    """Killed while v2 loads and v3 is half-copied: the restarted daemon serves v2 (the
    newest good version), never touches v3 until it is whole, then serves v3."""
    base = tmp_path / "models" / "m"
    base.mkdir(parents=True)
    exports.publish(base, 1, 1.0)
    hold = tmp_path / "hold"
    config = daemon_config(tmp_path / "c.yaml", {"m": base},
                           model_extra="warmup: faults.daemoncode:hold_warmup")
    env = {"HOLD_FILE": str(hold)}
    first = CheckedDaemon(config, tmp_path, tmp_path / "first.json", env=env, notify=False)
    daemons.append(first)
    first.wait_state("m", 1, "AVAILABLE")
    first.wait_answers(1)
    hold.write_text("")
    exports.publish(base, 2, 2.0)
    first.wait_state("m", 2, "LOADING")
    wait_until(lambda: Path(f"{hold}.entered").exists(), TIMEOUT, "v2's load to be held")
    source, v3 = exports.get(3.0), base / "3"
    v3.mkdir()  # cp -r order, stopped half-way: no variables yet
    for name in ("saved_model.pb", "fingerprint.pb"):
        shutil.copyfile(source / name, v3 / name)
    first.wait_state("m", 3, "WAITING")
    first.wait_answers(1)
    first.proc.kill()
    assert first.proc.wait(TIMEOUT) == -signal.SIGKILL
    no_failures(first.report())

    hold.unlink()
    second = CheckedDaemon(config, tmp_path, tmp_path / "second.json", env=env, notify=False)
    daemons.append(second)
    second.wait_state("m", 2, "AVAILABLE")
    second.wait_answers(2)
    waiting = second.wait_state("m", 3, "WAITING")
    assert "variables" in waiting["error"]
    assert second.count(lambda r: r.get("version") == 1 and r.get("state") == "LOADING") == 0
    shutil.copytree(source / "variables", v3 / "variables")
    second.wait_state("m", 3, "AVAILABLE")
    second.wait_answers(3)
    states = [r["state"] for r in second.logs
              if r.get("event") == "version_state" and r.get("version") == 3]
    assert states.count("LOADING") == 1 and "ERROR" not in states, states
    assert second.stop() == 0
    no_failures(second.report())


def storm_config(path: Path, i: int, m: Path, x: Path) -> None:
    """Config number i: m pinned to version i % 3 + 1, plus a model named x<i>."""
    daemon_config(path, {"m": m, f"x{i}": x}, top="http: {listen: '127.0.0.1:0'}\n",
                  model_extra={"m": f"version_policy: {{specific: [{i % 3 + 1}]}}"})


def test_sighup_storm_ends_on_the_last_config(tmp_path: Path, exports: Exports,
                                              daemons: list[CheckedDaemon]) -> None:
    m, x = tmp_path / "models" / "m", tmp_path / "models" / "x"
    for base in (m, x):
        base.mkdir(parents=True)
    for v in (1, 2, 3):
        exports.publish(m, v, float(v))
    exports.publish(x, 1, 1.0)
    path = tmp_path / "c.yaml"
    storm_config(path, 0, m, x)
    d = CheckedDaemon(path, tmp_path)
    daemons.append(d)
    d.wait_note(lambda n: n.get("READY") == "1")
    d.wait_answers(1)
    url = http_url(d, "/v1/models")
    for i in range(1, 21):  # 20 reloads in about a second, each rewriting the file in place
        storm_config(path, i, m, x)
        d.send(signal.SIGHUP)
        time.sleep(0.05)  # pacing the storm, not waiting for anything

    last: list[Any] = []

    def settled() -> bool:
        last[:] = [get_json(url)]
        models = {entry["name"]: entry for entry in last[0]["models"]}
        if set(models) != {"m", "x20"}:
            return False
        served = [v["version"] for v in models["m"]["versions"] if v["state"] == "AVAILABLE"]
        return served == [3] and models["x20"]["served_version"] == 1

    try:
        wait_until(settled, TIMEOUT, "the last config's models and versions")
    except AssertionError:
        raise AssertionError(f"{last}; logs: {d.logs[-20:]}") from None
    outcomes = [r for r in d.logs if r.get("event") in ("reloaded", "reload_failed")]
    assert outcomes and outcomes[-1]["event"] == "reloaded", outcomes[-3:]
    assert outcomes[-1]["models"] == ["m", "x20"]
    assert 1 <= d.count(lambda r: r.get("event") == "reloading") <= 20
    d.wait_answers(3)
    assert d.stop() == 0
    assert "Traceback" not in d.stderr, d.stderr[-3000:]
    no_failures(d.report())


def test_inotify_overflow_new_version_found_by_the_rescan(
        tmp_path: Path, exports: Exports, daemons: list[CheckedDaemon]) -> None:
    """One inotify instance serves every watch of the daemon, and its kernel queue holds
    16384 events (fs.inotify.max_queued_events). With the daemon stopped (SIGSTOP), 20,000
    new files in another model's folder overflow it, so the event of m's new version is
    lost: the periodic rescan finds it, and says so in rescan_changes."""
    m, noisy = tmp_path / "models" / "m", tmp_path / "noisy"
    m.mkdir(parents=True)
    noisy.mkdir()
    exports.publish(m, 1, 1.0)
    exports.publish(noisy, 1, 1.0)
    config = daemon_config(tmp_path / "c.yaml", {"m": m, "noisy": noisy},
                           top="http: {listen: '127.0.0.1:0'}\n"
                               "watch: {mode: inotify, rescan_interval: 1s}\n")
    d = CheckedDaemon(config, tmp_path)
    daemons.append(d)
    d.wait_note(lambda n: n.get("READY") == "1")
    d.wait_answers(1)
    metrics = http_url(d, "/metrics")
    assert metric(metrics, "modelswap_rescan_changes_total") == 0
    files = 20_000
    d.send(signal.SIGSTOP)
    try:
        for i in range(files):  # in the watched folder itself (a new subfolder would
            # only be watched once the daemon runs again)
            os.close(os.open(noisy / f"junk-{i:05d}", os.O_CREAT | os.O_WRONLY, 0o644))
        exports.publish(m, 2, 2.0)  # its event comes after the queue overflowed
    finally:
        d.send(signal.SIGCONT)
    d.wait_log(lambda r: "Inotify queue overflowed" in r.get("event", ""))
    found = d.wait_log(lambda r: r.get("event") == "rescan_found_changes")
    assert found["model"] == "m"
    d.wait_state("m", 2, "AVAILABLE")
    d.wait_answers(2)
    assert metric(metrics, "modelswap_rescan_changes_total") >= 1
    assert metric(metrics, "modelswap_fs_events_total") < files  # events were lost
    assert d.stop() == 0
    no_failures(d.report())
