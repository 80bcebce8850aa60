"""The real daemon process with remote base paths: SIGKILL mid-download, then a restart;
SIGHUP reloads that add, change and remove remote models without downloading again."""

from __future__ import annotations

import signal
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

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



def metric(url: str, name: str, model: str) -> float:
    """A sample of the daemon's /metrics (0 when the model has none yet)."""
    with urllib.request.urlopen(url.rstrip("/") + "/metrics", timeout=TIMEOUT) as reply:
        text = reply.read().decode()
    return next((s.value for family in text_string_to_metric_families(text)
                 for s in family.samples if s.name == name and s.labels.get("model") == model),
                0.0)


def test_sighup_adds_changes_and_removes_remote_models_without_downloading_again(
        tmp_path: Path, aws_env: str, bucket: str, models: Models) -> None:
    m_url, n_url = f"s3://{bucket}/m", f"s3://{bucket}/n"
    publish(models.get("a"), m_url)
    publish(models.get("b"), n_url)
    cache = tmp_path / "cache"  # systemd's CacheDirectory= (remote.conf): the default
    config = tmp_path / "config.yaml"

    def write(names: list[str], poll: str) -> None:
        urls = {"m": m_url, "n": n_url}
        config.write_text("models:\n" + "".join(
            f"  - name: {name}\n    base_path: {urls[name]}\n" for name in names)
            + f"remote:\n  poll_interval: {poll}\n"
            "http:\n  listen: 127.0.0.1:0\nlogging:\n  format: json\n")

    write(["m"], "1h")  # no poll due during the test: only a reload makes a new listing
    d = DaemonProcess(config, tmp_path, env={"PYTHONPATH": str(DAEMON), "CACHE_DIRECTORY": str(
        cache), "TF_CPP_MIN_LOG_LEVEL": "2"})
    try:
        d.wait_note(lambda n: n.get("READY") == "1", what="READY=1")
        http = d.wait_log(lambda r: r.get("event") == "http_listening")["url"]
        report: dict[str, dict[str, Any]] = {}

        def served(name: str, version: int) -> bool:
            report.update({m["name"]: m for m in fetch_models(http)["models"]})
            return name in report and report[name]["served_version"] == version

        wait_for(lambda: served("m", 1), what="m v1 served")
        inode = (cache / "m" / "1").stat().st_ino
        m_bytes = metric(http, "modelswap_remote_downloaded_bytes_total", "m")
        assert metric(http, "modelswap_remote_downloads_total", "m") == 1 and m_bytes > 0
        lists = report["m"]["remote"]["requests"]["list"]

        # 1. add a second remote model and poll m every 200 ms: m's mirror is rebuilt on its
        # cache folder (the remote settings changed), adopts v1 and keeps serving it
        write(["m", "n"], "200ms")
        d.send(signal.SIGHUP)
        d.wait_log(lambda r: r.get("event") == "reloaded" and r["models"] == ["m", "n"])
        d.wait_state("n", 1, "AVAILABLE")
        wait_for(lambda: served("n", 1) and served("m", 1), what="n v1 and m v1 served")
        wait_for(lambda: served("m", 1) and report["m"]["remote"]["requests"]["list"]
                 >= lists + 3, what="m listed every 200 ms")
        assert metric(http, "modelswap_remote_downloads_total", "m") == 1
        # judging v1 afresh reads its manifest (a few hundred bytes), never the shard again
        assert metric(http, "modelswap_remote_downloaded_bytes_total", "m") - m_bytes < 4096
        assert metric(http, "modelswap_remote_downloads_total", "n") == 1
        assert (cache / "m" / "1").stat().st_ino == inode

        # 2. remove m: it is unloaded, n keeps serving and is not downloaded again
        n_bytes = metric(http, "modelswap_remote_downloaded_bytes_total", "n")
        write(["n"], "200ms")
        d.send(signal.SIGHUP)
        d.wait_log(lambda r: r.get("event") == "reloaded" and r["models"] == ["n"])
        d.wait_state("m", 1, "END")
        wait_for(lambda: served("n", 1), what="n v1 still served")
        assert "m" not in {m["name"] for m in fetch_models(http)["models"]}
        assert metric(http, "modelswap_remote_downloads_total", "n") == 1
        assert metric(http, "modelswap_remote_downloaded_bytes_total", "n") - n_bytes < 4096
        assert d.stop() == 0
    finally:
        d.close()
    # each version loaded once and downloaded once, in all
    assert sorted(r["model"] for r in d.logs if r.get("event") == "version_state"
                  and r.get("state") == "LOADING") == ["m", "n"]
    assert sorted(r["model"] for r in d.logs if r.get("event") == "remote_mirrored") == [
        "m", "n"]
    assert not any(r.get("event") == "reload_failed" for r in d.logs)
    assert (cache / "m" / "1").stat().st_ino == inode  # a removed model's cache stays
