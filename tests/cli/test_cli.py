"""The `modelswap` command: check, inspect, run (a real daemon process), demo."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from conftest import TIMEOUT, Exports, export_tf1

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "modelswap"]


def modelswap(*args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          check=False)


def test_check_bundled_configs() -> None:
    for path in sorted((ROOT / "config").glob("*.yaml")):
        result = modelswap("check", "--config", str(path))
        assert (result.returncode, result.stdout.strip()) == (0, "ok"), result.stderr


def test_check_bad_config_exits_2_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("models:\n  - name: m\n    base_path: /x\n    version_policy: {latest: 0}\n")
    result = modelswap("check", "--config", str(path))
    assert result.returncode == 2
    assert f"{path}:4: models[0].version_policy.latest" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    missing = modelswap("check", "--config", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "nope.yaml" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_version() -> None:
    from modelswap import __version__

    result = modelswap("--version")
    assert (result.returncode, result.stdout) == (0, f"modelswap {__version__}\n")


def test_check_lists_every_error_sorted_by_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("models:\n  - name: m\n    base_path: /x\n    version_policy: {latest: 0}\n"
                    "loader: {threads: 0}\nwatch:\n  mode: fast\n"
                    "trust: {owners: [no-such-user-xyz]}\n")
    result = modelswap("check", "--config", str(path))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"modelswap: config error: {path}:4: models[0].version_policy.latest: "
        "Input should be greater than or equal to 1, got 0",
        f"modelswap: config error: {path}:5: loader.threads: "
        "Input should be greater than or equal to 1, got 0",
        f"modelswap: config error: {path}:7: watch.mode: "
        "Input should be 'auto', 'inotify' or 'poll', got 'fast'",
        f"modelswap: config error: {path}:8: trust.owners[0]: "
        "unknown user 'no-such-user-xyz' (not in the user database)",
    ]


def test_check_warns_but_passes(tmp_path: Path, monkeypatch: object) -> None:
    home = tmp_path / "home"
    (home / "models" / "here").mkdir(parents=True)
    path = tmp_path / "c.yaml"
    path.write_text("models:\n  - name: here\n    base_path: ~/models/here\n"
                    "  - name: gone\n    base_path: ~/models/gone\n"
                    "service: {ready_when: immediately}\n")
    result = subprocess.run([*CLI, "check", "--config", str(path)], capture_output=True,
                            text=True, timeout=TIMEOUT, check=False,
                            env={**os.environ, "HOME": str(home)})
    assert (result.returncode, result.stdout) == (0, "ok\n"), result.stderr
    assert result.stderr.splitlines() == [
        f"modelswap: warning: {path}:5: models[1].base_path: {home}/models/gone does not "
        "exist (yet): gone serves nothing until it does",
        f"modelswap: warning: {path}:6: service.ready_when: ready_when is deprecated: use "
        "require: none",
    ]


def test_inspect_applies_trust_and_shows_config(tmp_path: Path, exports: Exports) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    os.chown(base / "1", 1001, 1500)
    plain = modelswap("inspect", str(base))
    assert plain.returncode == 1
    assert "version 1: not complete: trust: " in plain.stdout and "(Untrusted)" in plain.stdout
    config = tmp_path / "c.yaml"
    config.write_text(f"models:\n  - name: m\n    base_path: {base}\n"
                      "    load_options: {experimental_io_device: /job:localhost}\n"
                      "trust: {owners: ['group:1500']}\n")
    trusted = modelswap("inspect", "--config", str(config), "--json")
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr
    [report] = json.loads(trusted.stdout)
    assert report["versions"][0]["complete"] is True
    assert report["model"]["trust"] == {"owners": ["group:1500"], "group_writable_by": []}
    assert report["model"]["load_options"]["experimental_io_device"] == "/job:localhost"
    text = modelswap("inspect", str(base / "1"), "--config", str(config))
    assert text.returncode == 0 and "load_options: {'allow_partial_checkpoint': False" \
        in text.stdout
    elsewhere = modelswap("inspect", str(tmp_path), "--config", str(config))
    assert elsewhere.returncode == 2 and "no model in" in elsewhere.stderr


def test_inspect_version_and_base(tmp_path: Path, exports: Exports) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 3, 1.0)
    result = modelswap("inspect", str(base / "3"), "--json")
    assert result.returncode == 0, result.stderr
    [version] = json.loads(result.stdout)["versions"]
    assert version["complete"] is True and version["fingerprint"]["saved_model_checksum"]
    [graph] = version["meta_graphs"]
    assert graph["tags"] == ["serve"]
    sig = graph["signatures"]["serving_default"]
    assert sig["inputs"]["x"] == {"dtype": "float32", "shape": [None, 1],
                                  "tensor": "serving_default_x:0"}
    assert sig["outputs"]["y"]["dtype"] == "float32"
    (base / "4" / "variables").mkdir(parents=True)
    (base / "4" / "saved_model.pb").write_bytes((base / "3" / "saved_model.pb").read_bytes())
    export_tf1(base / "5", {("serve", "gpu"): 0.0})
    text = modelswap("inspect", str(base))
    assert text.returncode == 1
    assert ("version 4: not complete: variables: variables/variables.index missing "
            "(IncompleteModel)") in text.stdout
    assert "version 5: not complete: tags: no MetaGraph has tags" in text.stdout
    assert "version 3: complete" in text.stdout
    assert "input  x: float32 [None, 1]" in text.stdout
    gpu = modelswap("inspect", str(base / "5"), "--tags", "serve,gpu")
    assert gpu.returncode == 0 and "complete [tags ['gpu', 'serve']]" in gpu.stdout
    (base / "6").mkdir()  # an empty version folder: not complete, exit 1
    empty = modelswap("inspect", str(base / "6"))
    assert empty.returncode == 1, empty.stdout
    assert "not complete: saved_model.pb: saved_model.pb not there yet" in empty.stdout


def test_run_serves_and_stops_on_sigint(tmp_path: Path, exports: Exports) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    config = tmp_path / "c.yaml"
    config.write_text(f"models:\n  - name: m\n    base_path: {base}\n"
                      "logging: {format: json}\n")
    proc = subprocess.Popen([*CLI, "run", "--config", str(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines: list[dict[str, object]] = []
    available = {1: threading.Event(), 2: threading.Event()}

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            record = json.loads(line)
            lines.append(record)
            if record.get("state") == "AVAILABLE" and record.get("version") in available:
                available[record["version"]].set()  # type: ignore[index]

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert available[1].wait(TIMEOUT), lines
        exports.publish(base, 2, 2.0)
        assert available[2].wait(TIMEOUT), lines
        proc.send_signal(signal.SIGINT)
        assert proc.wait(TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(TIMEOUT)
    events = [(r.get("event"), r.get("version"), r.get("state")) for r in lines]
    assert ("version_state", 1, "END") in events and ("version_state", 2, "END") in events
    assert events[-1][0] == "stopped"
    assert all({"timestamp", "level", "event"} <= r.keys() for r in lines)


def test_demo_swaps_with_zero_failed_calls() -> None:
    env = dict(os.environ)
    result = subprocess.run([*CLI, "demo"], capture_output=True, text=True, timeout=300,
                            check=False, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "failed calls: 0" in result.stdout
    assert "v2 AVAILABLE" in result.stdout and "v1 END" in result.stdout
    folder = result.stdout.split("modelswap demo in ", 1)[1].split()[0]
    assert not Path(folder).exists()
