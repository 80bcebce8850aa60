"""The real daemon process with a remote base path: SIGKILL mid-download, then a restart."""

from __future__ import annotations

import signal
from pathlib import Path

from daemon import DaemonProcess  # tests/daemon.py: the real daemon process
from modelswap.cli.status import fetch_models
from modelswap.watch.remote import publish
from watch.remote.remote_helpers import SECRET, TIMEOUT, Models, Proxy, predict, wait_for

DAEMON = Path(__file__).resolve().parents[3] / "daemon"


def test_daemon_killed_mid_download_completes_and_serves_after_a_restart(
        tmp_path: Path, aws_env: str, bucket: str, models: Models) -> None:
    url = f"s3://{bucket}/m"
    publish(models.get("big"), url)
    cache = tmp_path / "cache"
    config = tmp_path / "config.yaml"
    config.write_text(f"models:\n  - name: m\n    base_path: {url}\n"
                      f"remote:\n  cache_dir: {cache}\n  poll_interval: 1h\n"
                      "http:\n  listen: 127.0.0.1:0\nlogging:\n  format: json\n")
    proxy = Proxy(int(aws_env.rsplit(":", 1)[1]))
    env = {"AWS_ENDPOINT_URL": proxy.endpoint, "PYTHONPATH": str(DAEMON),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    incoming = cache / "m" / ".incoming-1" / "variables" / "variables.data-00000-of-00001"
    try:
        proxy.stall_after(1 << 20)  # every response holds after 1 MiB: mid-shard
        first = DaemonProcess(config, tmp_path, env=env, notify=False)
        try:
            wait_for(lambda: incoming.exists() or first.proc.poll() is not None,
                     what="download started")
            first.proc.send_signal(signal.SIGKILL)
            assert first.proc.wait(TIMEOUT) == -signal.SIGKILL
        finally:
            first.close()
        assert incoming.exists() and not (cache / "m" / "1").exists()  # nothing loadable
        proxy.release()
        second = DaemonProcess(config, tmp_path, env=env, notify=False)
        try:
            cleaned = second.wait_log(lambda r: r.get("event") == "remote_cache_cleaned")
            assert cleaned["removed"] == [".incoming-1"]
            second.wait_state("m", 1, "AVAILABLE")
            listening = second.wait_log(lambda r: r.get("event") == "http_listening")
            served: list[dict[str, object]] = []  # the log line can precede publication

            def serving() -> bool:
                served[:] = fetch_models(listening["url"])["models"]
                return served[0]["served_version"] == 1

            wait_for(serving, what="v1 served (/v1/models)")
            report = {"models": served}
            assert report["models"][0]["remote"]["reachable"] is True
            assert second.stop() == 0
        finally:
            second.close()
        assert sorted(p.name for p in (cache / "m").iterdir()) == ["1"]
        assert predict(cache / "m" / "1") == Models.answer("big")
        logs = repr(first.logs) + repr(second.logs) + first.stderr + second.stderr
        assert SECRET not in logs
    finally:
        proxy.close()

