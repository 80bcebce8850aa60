"""Faults against moto's real S3 server: store away and back, credentials refused, a kill;
long outages (a missing folder, a queue that never answers)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from modelswap.watch.remote import Mirror, RemoteConfig, cli_publish, publish
from watch.remote.remote_helpers import SECRET, TIMEOUT, Models, Proxy, predict, wait_for

DAEMON = Path(__file__).resolve().parents[3] / "daemon"


def config(tmp_path: Path) -> RemoteConfig:
    return RemoteConfig(cache_dir=tmp_path / "cache", poll_interval=3600.0)


def state(mirror: Mirror, n: int) -> str | None:
    v = mirror.status().version(n)
    return v.state if v else None


@pytest.fixture
def proxy(aws_env: str) -> Any:
    p = Proxy(int(aws_env.rsplit(":", 1)[1]))
    yield p
    p.close()


def test_store_going_away_and_coming_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          proxy: Proxy, bucket: str, models: Models) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
    url = f"s3://{bucket}/m"
    publish(models.get("a"), url)
    mirror = Mirror("m", url, config(tmp_path), retry_initial=0.05, retry_max=0.2)
    with capture_logs() as logs, mirror:
        wait_for(lambda: state(mirror, 1) == "mirrored", what="v1 mirrored")
        publish(models.get("b"), url)
        proxy.refuse()
        mirror.poke()
        wait_for(lambda: mirror.status().consecutive_failures >= 3, what="failed listings")
        status = mirror.status()
        assert status.reachable is False and status.error_kind == "unreachable"
        assert state(mirror, 1) == "mirrored" and state(mirror, 2) is None
        assert (mirror.local_dir / "1").is_dir()
        proxy.allow()
        wait_for(lambda: state(mirror, 2) == "mirrored", what="v2 mirrored after recovery")
        assert mirror.status().reachable is True and mirror.status().error is None
    events = [e["event"] for e in logs]
    assert events.count("remote_unreachable") == 1  # a state change, not one line per retry
    assert events.count("remote_reachable") == 1
    assert mirror.counters.snapshot()["list_failures"] >= 3
    assert predict(mirror.local_dir / "2") == Models.answer("b")


def test_a_stalled_store_counts_as_unreachable_until_it_answers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, proxy: Proxy, bucket: str,
        models: Models) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
    url = f"s3://{bucket}/m"
    publish(models.get("a"), url)
    cfg = RemoteConfig(cache_dir=tmp_path / "cache", poll_interval=3600.0, stall_timeout=0.3)
    with Mirror("m", url, cfg, retry_initial=0.05, retry_max=0.2) as mirror:
        wait_for(lambda: state(mirror, 1) == "mirrored", what="v1 mirrored")
        publish(models.get("b"), url)
        proxy.stall_after(0)  # connections open, requests sent, no answer ever comes
        mirror.poke()
        wait_for(lambda: mirror.status().reachable is False, what="stall detected")
        assert mirror.status().error_kind == "unreachable"
        assert state(mirror, 1) == "mirrored" and state(mirror, 2) is None
        proxy.release()
        wait_for(lambda: state(mirror, 2) == "mirrored", what="v2 mirrored once it answers")
    assert predict(mirror.local_dir / "2") == Models.answer("b")


def _moto_auth(endpoint: str, count: str) -> None:
    """moto's own switch: from now on, authenticate every request (count 0) or none (inf)."""
    req = urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=count.encode(),
                                 method="POST", headers={"Content-Type": "text/plain"})
    urllib.request.urlopen(req, timeout=TIMEOUT).read()


def test_credentials_refused_names_the_model_without_a_traceback(
        tmp_path: Path, aws_env: str, bucket: str, models: Models) -> None:
    url = f"s3://{bucket}/m"
    publish(models.get("a"), url)
    mirror = Mirror("fraud_model", url, config(tmp_path))
    mirror.prepare()
    lines: list[str] = []
    _moto_auth(aws_env, "0")  # our access key does not exist in moto's IAM: 403
    try:
        with capture_logs() as logs:
            assert not mirror.poll_once()
            assert not mirror.poll_once()
        status = mirror.status()
        assert cli_publish(str(models.get("a")), url, err=lines.append) == 1
    finally:
        _moto_auth(aws_env, "inf")
    assert status.reachable is False and status.error_kind == "refused"
    refused = [e for e in logs if e["event"] == "remote_refused"]
    assert len(refused) == 1, logs
    assert "fraud_model" in refused[0]["error"] and "InvalidAccessKeyId" in refused[0]["error"]
    assert "exc_info" not in refused[0]
    assert len(lines) == 1 and "403" in lines[0], lines
    assert SECRET not in repr(logs) + repr(status) + repr(lines)
    assert mirror.poll_once()  # the key works again: it recovers by itself
    wait_for(lambda: state(mirror, 1) == "mirrored", what="mirrored after the fix")


CHILD = textwrap.dedent("""
    import sys, threading
    from pathlib import Path
    from modelswap.watch.remote import Mirror, RemoteConfig
    Mirror("m", sys.argv[1], RemoteConfig(cache_dir=Path(sys.argv[2]),
                                          poll_interval=3600.0)).start()
    threading.Event().wait()
""")


def test_killed_mid_download_leaves_nothing_that_loads(
        tmp_path: Path, proxy: Proxy, bucket: str, models: Models) -> None:
    url = f"s3://{bucket}/m"
    publish(models.get("big"), url)
    cache = tmp_path / "cache"
    proxy.stall_after(1 << 20)  # every response holds after 1 MiB: mid-shard
    env = {**os.environ, "AWS_ENDPOINT_URL": proxy.endpoint, "PYTHONPATH": str(DAEMON)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, url, str(cache)], env=env)
    shard = cache / "m" / ".incoming-1" / "variables" / "variables.data-00000-of-00001"
    try:
        wait_for(lambda: shard.exists() or child.poll() is not None, what="download started")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(TIMEOUT)
    assert shard.exists(), f"the child exited early ({child.returncode})"
    assert not (cache / "m" / "1").exists()  # nothing at the version's path
    proxy.release()
    with Mirror("m", url, config(tmp_path)) as mirror:
        wait_for(lambda: state(mirror, 1) == "mirrored", what="mirrored after restart")
    assert sorted(p.name for p in (cache / "m").iterdir()) == ["1"]
    assert predict(cache / "m" / "1") == Models.answer("big")


def test_a_long_store_outage_never_ends_the_mirror(tmp_path: Path, models: Models) -> None:
    """The backoff doubles per failure up to `retry_max`: after ~1,000 failures (days at the
    default 300 s) 2 ** n times a float overflowed and ended the mirror's thread for good."""
    root = tmp_path / "not-mounted"
    with Mirror("m", root.as_uri(), config(tmp_path), retry_initial=1e-9,
                retry_max=0.0) as mirror:  # retry at once: 1,100 failures in about a second
        wait_for(lambda: mirror.status().consecutive_failures > 1100, what="1,100 failures")
        publish(models.get("a"), root.as_uri())  # the store is back
        mirror.poke()  # a listing after the publish, not one that caught it halfway
        wait_for(lambda: state(mirror, 1) == "mirrored", what="v1 mirrored after the outage")


def test_a_long_queue_outage_never_ends_the_hints_thread() -> None:
    from modelswap.watch.remote import Hints

    class Down(Hints):
        kind = "sqs"

        def __init__(self) -> None:
            super().__init__("https://sqs.eu-west-1.amazonaws.com/1/q", retry_initial=1e-9,
                             retry_max=0.0)  # retry at once
            self.calls, self.closed = 0, False
            self.reached = threading.Event()

        def receive_once(self) -> int:
            self.calls += 1
            if self.calls > 1100:
                self.reached.set()
            raise ConnectionError("queue unreachable")

        def close(self) -> None:
            self.closed = True

    hints = Down()
    hints.start()
    try:
        assert hints.reached.wait(TIMEOUT), f"the thread ended after {hints.calls} receives"
    finally:
        hints.stop(timeout=TIMEOUT)
    assert hints.closed and hints.counters.snapshot()["errors"] > 1100
