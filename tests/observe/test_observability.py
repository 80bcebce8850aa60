"""Observability: the HTTP status API (TF Serving's shape), health and readiness, Prometheus
metrics, JSON logs and `modelswap status`, against running ModelSwaps and a real daemon."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import TIMEOUT, Exports, export_tf1, wait_until, yaml_for
from modelswap import ConfigError, ModelSwap, State
from modelswap.cli.status import age
from modelswap.config import parse_config
from modelswap.load import job as loader_module

CLI = [sys.executable, "-m", "modelswap"]
HTTP = "http: {listen: '127.0.0.1:0'}\n"


def url_of(swap: ModelSwap, path: str = "") -> str:
    address = swap.http_address
    assert address is not None
    return f"http://{address[0]}:{address[1]}{path}"


def get(url: str, method: str = "GET") -> tuple[int, Any, str]:
    """(status code, parsed JSON body or None, content type)."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            code, body, kind = response.status, response.read(), response.headers["Content-Type"]
    except urllib.error.HTTPError as exc:
        code, body, kind = exc.code, exc.read(), exc.headers["Content-Type"]
    parsed = json.loads(body) if body and kind == "application/json" else None
    return code, parsed, kind


def metrics(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """{(sample name, labels): value} from a scrape, via prometheus_client's parser."""
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        text = response.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
          **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def tf_status(version: int, state: str, code: str = "OK", message: str = "") -> dict[str, Any]:
    return {"version": str(version), "state": state,
            "status": {"error_code": code, "error_message": message}}


def wrong_tags(tmp_path: Path, base: Path, version: int) -> None:
    """Publish a TF1 SavedModel tagged [train] (the config wants [serve]) by rename."""
    staging = tmp_path / f"stage-{version}"
    export_tf1(staging, {("train",): 0.0})
    os.replace(staging, base / str(version))


@pytest.fixture
def hold_loads(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], threading.Event]]:
    """`hold(model_dir_name)`: loads of versions under that base path wait for the returned
    event, so LOADING can be observed deterministically (the load itself is real)."""
    real = loader_module.load_version
    gates: dict[str, threading.Event] = {}

    def held(path: Path, *args: Any, **kwargs: Any) -> Any:
        gate = gates.get(path.parent.name)
        if gate is not None:
            gate.wait(TIMEOUT)
        return real(path, *args, **kwargs)

    def hold(name: str) -> threading.Event:
        return gates.setdefault(name, threading.Event())

    monkeypatch.setattr(loader_module, "load_version", held)
    yield hold
    for gate in gates.values():
        gate.set()


def test_status_api_in_tf_serving_shape(tmp_path: Path, exports: Exports,
                                        run_swap: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    swap, events = run_swap(yaml_for(base, "labels: {stable: 1, canary: 2}", top=HTTP))
    swap.wait_until_available("m", timeout=TIMEOUT)
    available = {"model_version_status": [tf_status(1, "AVAILABLE")]}
    assert get(url_of(swap, "/v1/models/m")) == (200, available, "application/json")
    assert get(url_of(swap, "/v1/models/m/"))[:2] == (200, available)
    assert get(url_of(swap, "/v1/models/m/versions/1"))[:2] == (200, available)
    assert get(url_of(swap, "/v1/models/m/labels/stable"))[:2] == (200, available)
    assert get(url_of(swap, "/v1/models/nope"))[:2] == (
        404, {"error": "Could not find any versions of model nope"})
    assert get(url_of(swap, "/v1/models/m/versions/7"))[:2] == (
        404, {"error": "Could not find version 7 of model m"})
    code, body, _ = get(url_of(swap, "/v1/models/m/labels/nope"))
    assert code == 404 and "nope" in body["error"]
    assert get(url_of(swap, "/v1/models/m/labels/canary"))[:2] == (
        404, {"error": "Could not find version 2 of model m"})  # labelled, not on disk
    code, body, _ = get(url_of(swap, "/v2/whatever"))
    assert code == 404 and "error" in body
    assert get(url_of(swap, "/v1/models/m"), method="HEAD")[0] == 200

    wrong_tags(tmp_path, base, 2)
    events.wait_state(2, State.ERROR)
    code, body, _ = get(url_of(swap, "/v1/models/m"))
    assert code == 200
    [v2, v1] = body["model_version_status"]
    assert v1 == tf_status(1, "AVAILABLE")
    assert (v2["version"], v2["state"], v2["status"]["error_code"]) == ("2", "END", "NOT_FOUND")
    assert "train" in v2["status"]["error_message"]
    assert get(url_of(swap, "/v1/models/m/labels/canary"))[1] == {"model_version_status": [v2]}

    code, body, _ = get(url_of(swap, "/v1/models"))
    assert code == 200 and body["ready"] is True
    [model] = body["models"]
    assert (model["name"], model["base_path"], model["served_version"]) == ("m", str(base), 1)
    assert model["labels"] == {"canary": 2, "stable": 1}
    [e2, e1] = model["versions"]
    assert (e2["version"], e2["state"], e2["tf_state"], e2["error_type"]) == (
        2, "ERROR", "END", "TagMismatch")
    assert (e1["version"], e1["state"], e1["error"], e1["labels"]) == (
        1, "AVAILABLE", None, ["stable"])
    assert e1["path"] == str(base / "1") and e1["age_s"] >= 0 and e1["since"].endswith("Z")


def test_loading_state_health_and_readiness(tmp_path: Path, exports: Exports, run_swap: Any,
                                            hold_loads: Callable[[str], threading.Event]) -> None:
    fast, slow = tmp_path / "fast", tmp_path / "slow"
    for base in (fast, slow):
        base.mkdir()
        exports.publish(base, 1, 1.0)
    release = hold_loads("slow")
    models = (f"models:\n  - {{name: fast, base_path: {fast}}}\n"
              f"  - {{name: slow, base_path: {slow}}}\n")
    all_swap, all_events = run_swap(models + HTTP + "service: {require: all}\n")
    any_swap, any_events = run_swap(models + HTTP + "service: {require: any}\n")
    for events in (all_events, any_events):
        events.wait_state(1, State.AVAILABLE, model="fast")
        events.wait_state(1, State.LOADING, model="slow")

    loading = {"model_version_status": [tf_status(1, "LOADING")]}
    assert get(url_of(all_swap, "/v1/models/slow"))[:2] == (200, loading)
    assert get(url_of(all_swap, "/readyz"))[:2] == (
        503, {"ready": False, "require": "all", "waiting_for": ["slow"]})
    assert get(url_of(any_swap, "/readyz"))[:2] == (
        200, {"ready": True, "require": "any", "waiting_for": ["slow"]})
    code, health, _ = get(url_of(all_swap, "/healthz"))
    assert code == 200 and health["status"] == "ok" and health["coordinator_alive"] is True
    assert health["observers_alive"] is True

    # `modelswap status`: one model has no available version yet → exit 1
    result = subprocess.run([*CLI, "status", "--url", url_of(all_swap)], capture_output=True,
                            text=True, timeout=TIMEOUT, check=False)
    assert result.returncode == 1, result.stderr
    rows = [line.split()[:3] for line in result.stdout.splitlines()]
    assert ["slow", "1", "LOADING"] in rows and ["fast", "1", "AVAILABLE"] in rows
    assert result.stdout.splitlines()[-1] == "1/2 models serving; ready: no"

    release.set()
    all_swap.wait_until_available("slow", timeout=TIMEOUT)
    wait_until(lambda: get(url_of(all_swap, "/readyz"))[0] == 200, what="ready")
    assert get(url_of(all_swap, "/readyz"))[1]["waiting_for"] == []

    # a dead coordinator makes the process unhealthy (and the answer says why)
    all_swap._coordinator.stop(timeout=TIMEOUT)
    code, health, _ = get(url_of(all_swap, "/healthz"))
    assert code == 503 and health["status"] == "unhealthy"
    assert health["coordinator_alive"] is False


def test_metrics_move(tmp_path: Path, exports: Exports, run_swap: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    swap, events = run_swap(yaml_for(base, top=HTTP))
    swap.wait_until_available("m", timeout=TIMEOUT)
    url = url_of(swap, "/metrics")
    code, _, kind = get(url)
    assert code == 200 and kind.startswith("text/plain")
    before = metrics(url)
    assert value(before, "modelswap_swaps_total", model="m") == 1
    assert value(before, "modelswap_served_version", model="m") == 1
    assert value(before, "modelswap_model_version_state", model="m", version="1",
                 state="AVAILABLE") == 1
    assert value(before, "modelswap_model_version_state", model="m", version="1",
                 state="LOADING") == 0
    assert value(before, "modelswap_load_duration_seconds_count", model="m", stage="load") == 1
    assert value(before, "modelswap_detect_to_available_seconds_count", model="m",
                 **{"from": "ready"}) == 1
    assert value(before, "modelswap_active_handles", model="m", version="1") == 0
    assert value(before, "process_cpu_seconds_total") is not None  # the default collectors
    assert value(before, "modelswap_hook_errors_total") is not None

    held = swap.acquire("m")  # v1 stays in use through the swap: UNLOADING with a handle
    assert value(metrics(url), "modelswap_active_handles", model="m", version="1") == 1
    exports.publish(base, 2, 2.0)
    events.wait_state(1, State.UNLOADING)
    after = metrics(url)
    assert value(after, "modelswap_swaps_total", model="m") == 2
    assert value(after, "modelswap_served_version", model="m") == 2
    assert value(after, "modelswap_load_duration_seconds_count", model="m", stage="load") == 2
    assert value(after, "modelswap_detect_to_available_seconds_count", model="m",
                 **{"from": "event"}) == 1  # v2 was announced by a filesystem event
    assert value(after, "modelswap_model_version_state", model="m", version="1",
                 state="UNLOADING") == 1
    assert value(after, "modelswap_active_handles", model="m", version="1") == 1
    assert (value(after, "modelswap_fs_events_total") or 0) > (
        value(before, "modelswap_fs_events_total") or 0)
    held.release()
    events.wait_state(1, State.END)
    wait_until(lambda: value(metrics(url), "modelswap_active_handles", model="m",
                             version="1") is None, what="v1's handles gone")

    assert value(after, "modelswap_load_failures_total", model="m",
                 reason="TagMismatch") is None
    wrong_tags(tmp_path, base, 3)
    events.wait_state(3, State.ERROR)
    failed = metrics(url)
    assert value(failed, "modelswap_load_failures_total", model="m", reason="TagMismatch") == 1
    assert value(failed, "modelswap_served_version", model="m") == 2
    assert value(failed, "modelswap_model_version_state", model="m", version="3",
                 state="ERROR") == 1


def test_rescan_metrics_count_changes_no_event_reported(tmp_path: Path, exports: Exports,
                                                         run_swap: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    # polling once an hour: only the rescan can notice version 2
    swap, events = run_swap(yaml_for(base, top=HTTP + "watch: {mode: poll, poll_interval: 1h, "
                                     "rescan_interval: 200ms}\n"))
    swap.wait_until_available("m", timeout=TIMEOUT)
    url = url_of(swap, "/metrics")
    wait_until(lambda: (value(metrics(url), "modelswap_rescans_total") or 0) >= 1,
               what="a rescan")
    assert value(metrics(url), "modelswap_rescan_changes_total") == 0
    exports.publish(base, 2, 2.0)
    events.wait_state(2, State.AVAILABLE)
    samples = metrics(url)
    assert value(samples, "modelswap_rescan_changes_total") == 1
    assert value(samples, "modelswap_fs_events_total") == 0


def test_instances_have_their_own_registries(tmp_path: Path, exports: Exports,
                                             run_swap: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    one, _ = run_swap(yaml_for(base, top=HTTP))
    two, _ = run_swap(yaml_for(base, top=HTTP, name="other"))
    one.wait_until_available("m", timeout=TIMEOUT)
    two.wait_until_available("other", timeout=TIMEOUT)
    assert one.metrics.registry is not two.metrics.registry
    assert one.http_address != two.http_address
    first, second = metrics(url_of(one, "/metrics")), metrics(url_of(two, "/metrics"))
    assert value(first, "modelswap_swaps_total", model="m") == 1
    assert value(first, "modelswap_swaps_total", model="other") is None
    assert value(second, "modelswap_swaps_total", model="other") == 1


def test_http_is_off_by_default_and_a_taken_port_is_a_config_error(tmp_path: Path) -> None:
    base = tmp_path / "m"
    base.mkdir()
    swap = ModelSwap(parse_config(yaml_for(base)))
    with swap:
        assert swap.http_address is None
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        listen = f"http: {{listen: '127.0.0.1:{port}'}}\n"
        busy = ModelSwap(parse_config(yaml_for(base, top=listen)))
        with pytest.raises(ConfigError, match=r"http\.listen: cannot listen on 127\.0\.0\.1:"):
            busy.start()
        busy.stop()


def test_status_age_format() -> None:
    assert [age(s) for s in (0, 59.9, 60, 3599, 3600, 86399, 90061)] == [
        "0s", "59s", "1m00s", "59m59s", "1h00m", "23h59m", "1d01h"]


class Daemon:
    """`modelswap run` in a subprocess, its JSON log lines collected as they come."""

    def __init__(self, config: Path) -> None:
        self.proc = subprocess.Popen([*CLI, "run", "--config", str(config)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(json.loads(line))
                self._cond.notify_all()

    def wait(self, pred: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        with self._cond:
            if not self._cond.wait_for(lambda: any(pred(r) for r in self.lines), TIMEOUT):
                raise AssertionError(f"no {what} in {self.lines}")
            return next(r for r in self.lines if pred(r))

    def state(self, model: str, version: int, state: str) -> dict[str, Any]:
        return self.wait(lambda r: (r.get("event"), r.get("model"), r.get("version"),
                                    r.get("state")) == ("version_state", model, version, state),
                         f"{model} v{version} {state}")


def status_cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "status", "--url", url, *args], capture_output=True,
                          text=True, timeout=TIMEOUT, check=False)


def test_daemon_http_logs_and_status_command(tmp_path: Path, exports: Exports) -> None:
    good, late = tmp_path / "good", tmp_path / "late"
    good.mkdir()
    late.mkdir()
    exports.publish(good, 1, 1.0)
    config = tmp_path / "c.yaml"
    config.write_text(f"models:\n  - {{name: good, base_path: {good}}}\n"
                      f"  - {{name: late, base_path: {late}}}\n"
                      "logging: {format: json}\n" + HTTP)
    daemon = Daemon(config)
    try:
        listening = daemon.wait(lambda r: r.get("event") == "http_listening", "http_listening")
        assert listening["host"] == "127.0.0.1" and listening["port"] > 0
        url = f"http://127.0.0.1:{listening['port']}"
        daemon.state("good", 1, "AVAILABLE")

        # `late` has no version yet: exit 1, and the table says so
        result = status_cli(url)
        assert result.returncode == 1, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0].split() == ["MODEL", "VERSION", "STATE", "AGE", "DETAIL"]
        assert lines[1].split()[:3] == ["good", "1", "AVAILABLE"] and "serving" in lines[1]
        assert lines[2].split()[:4] == ["late", "-", "-", "-"]
        assert lines[-1] == "1/2 models serving; ready: yes"

        exports.publish(late, 1, 2.0)
        daemon.state("late", 1, "AVAILABLE")
        wrong_tags(tmp_path, late, 2)
        daemon.state("late", 2, "ERROR")
        result = status_cli(url)
        assert result.returncode == 0, result.stderr
        assert "TagMismatch:" in result.stdout and "2/2 models serving" in result.stdout
        as_json = status_cli(url, "--json")
        assert as_json.returncode == 0
        report = json.loads(as_json.stdout)
        assert [m["served_version"] for m in report["models"]] == [1, 1]

        assert get(url + "/healthz")[0] == 200 and get(url + "/readyz")[0] == 200
        assert get(url + "/v1/models/late/versions/2")[1]["model_version_status"][0][
            "status"]["error_code"] == "NOT_FOUND"
        samples = metrics(url + "/metrics")
        assert value(samples, "modelswap_swaps_total", model="late") == 1
        assert value(samples, "modelswap_load_failures_total", model="late",
                     reason="TagMismatch") == 1
        assert value(samples, "modelswap_served_version", model="good") == 1
    finally:
        daemon.proc.terminate()
        assert daemon.proc.wait(TIMEOUT) == 0
    daemon._reader.join(TIMEOUT)

    unreachable = status_cli(url)
    assert unreachable.returncode == 2 and unreachable.stdout == ""
    assert unreachable.stderr.startswith(f"modelswap: cannot reach the daemon at {url}")
    assert len(unreachable.stderr.strip().splitlines()) == 1

    # every lifecycle event is one JSON line with the fields an operator needs
    states = [r for r in daemon.lines if r.get("event") == "version_state"]
    assert all({"timestamp", "level", "model", "version", "state", "previous", "path"}
               <= r.keys() for r in states)
    first = next(r for r in states if r["model"] == "good" and r["state"] == "AVAILABLE")
    assert {"load_s", "validate_s", "ready_to_available_s"} <= first.keys()
    announced = next(r for r in states if r["model"] == "late" and r["state"] == "AVAILABLE")
    assert {"load_s", "event_to_available_s", "gate_wait_s"} <= announced.keys()
    assert announced["path"] == str(late / "1")
    error = next(r for r in states if r["model"] == "late" and r["state"] == "ERROR")
    assert error["error_type"] == "TagMismatch" and "train" in error["error"]
    assert error["level"] == "warning"
