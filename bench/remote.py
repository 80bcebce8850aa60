"""Remote mirror benchmark against moto's S3 + SQS server on 127.0.0.1 (one run, one endpoint).

    PYTHONPATH=daemon python bench/remote.py [--quick]

1. requests per model per hour while idle: the mirror's 30 s poll vs a 1 s poll (TF
   Serving's default), counted by the server itself (its request log), per poll, then
   scaled to an hour (target <= 150 against 3,600);
2. publish -> mirrored latency with the SQS queue (and, without --quick, without it);
3. download throughput: the mirror's download (stream, crc32c, fsync, rename) against
   obstore's raw `get` of the same files into a folder (the floor, target >= 0.9x), and
   against that raw `get` plus an fsync per file (what durability costs by itself).

A benchmark, not a test: it asserts nothing. Not wired into `python -m bench` yet.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any


class _Server:
    """moto's server in its own process (so it does not share our GIL), on 127.0.0.1; counts
    the requests it logs (one werkzeug line per request)."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.count = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()
        _wait(self._up, timeout=60)

    def _up(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def _read(self) -> None:
        assert self._proc.stderr is not None
        for line in self._proc.stderr:
            if "HTTP/1." in line:
                with self._lock:
                    self.count += 1

    def requests(self) -> int:
        """Requests logged so far (after a short settle for the log pipe to catch up)."""
        seen = -1
        while seen != self.count:
            seen = self.count
            time.sleep(0.2)
        return seen

    def stop(self) -> None:
        self._proc.terminate()
        self._proc.wait(30)


def _export(path: Path, floats: int) -> Path:
    import tensorflow as tf

    class M(tf.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(tf.zeros([floats]))

        @tf.function(  # type: ignore[untyped-decorator]
            input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
        def __call__(self, x: Any) -> dict[str, Any]:
            return {"y": x + tf.reduce_sum(self.w)}

    m = M()
    tf.saved_model.save(m, str(path), signatures={"serving_default": m.__call__})
    return path


def _wait(pred: Callable[[], object], timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark step timed out")
        time.sleep(0.005)


def _reachable(mirror: Any) -> bool:
    return bool(mirror.status().reachable)


def _any_mirrored(mirror: Any) -> bool:
    return any(v.state == "mirrored" for v in mirror.status().versions)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import boto3
    import obstore

    from modelswap.watch.remote import Mirror, QueueHints, RemoteConfig, open_remote, publish
    from modelswap.watch.remote.cache import Cache
    from modelswap.watch.remote.client import Client
    from modelswap.watch.remote.download import download
    from modelswap.watch.remote.judge import judge
    from modelswap.watch.remote.listing import list_version

    server = _Server()
    os.environ.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{server.port}", AWS_ACCESS_KEY_ID="bench",
                      AWS_SECRET_ACCESS_KEY="bench-secret", AWS_REGION="us-east-1")
    work = Path(tempfile.mkdtemp(prefix="modelswap-bench-remote-"))
    rows: list[tuple[str, str, str, str]] = []
    try:
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        boto3.client("s3").create_bucket(Bucket=bucket)
        small = _export(work / "small", 1000)
        url = f"s3://{bucket}/models/m"
        for _ in range(3):
            publish(small, url)

        # 1. idle requests: a settled model, polled by the real loop
        polls = 20 if args.quick else 100
        mirror = Mirror("m", url, RemoteConfig(cache_dir=work / "cache"))
        mirror.prepare()
        mirror.poll_once()
        _wait(lambda: all(v.state == "mirrored" for v in mirror.status().versions))
        before = server.requests()
        for _ in range(polls):
            mirror.poll_once()
        per_poll = (server.requests() - before) / polls
        store = open_remote(url).store
        before = server.requests()
        for _ in range(polls):
            obstore.list_with_delimiter(store, None)
        per_list = (server.requests() - before) / polls
        ours, theirs = per_poll * 3600 / 30.0, per_list * 3600 / 1.0
        rows.append(("idle requests / model / hour (30 s poll)", f"{ours:.0f}", "<= 150",
                     f"{theirs:.0f} (1 s poll), {theirs / ours:.0f}x fewer"))
        mirror.stop()

        # 2. publish -> mirrored, with the queue (no poll due for 30 s)
        sqs = boto3.client("sqs", region_name="us-east-1")
        queue_url = sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:8]}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        boto3.client("s3").put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration={"QueueConfigurations": [
                {"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]})
        for label, use_queue in (("with queue", True), ("without queue", False)):
            if not use_queue and args.quick:
                rows.append(("publish -> mirrored, without queue", "skipped (--quick)",
                             "<= poll_interval", "30 s poll, +-20%"))
                continue
            url2 = f"s3://{bucket}/latency/{label.replace(' ', '-')}"
            mirror = Mirror("lat", url2, RemoteConfig(cache_dir=work / f"cache-{use_queue}"))
            hints = QueueHints(queue_url, wait_seconds=1)
            hints.add(url2, mirror.poke)
            mirror.start()
            if use_queue:
                hints.start()
            _wait(functools.partial(_reachable, mirror))
            t0 = time.perf_counter()
            publish(small, url2)
            _wait(functools.partial(_any_mirrored, mirror), timeout=120)
            took = time.perf_counter() - t0
            hints.stop()
            mirror.stop()
            rows.append((f"publish -> mirrored, {label}", f"{took:.2f} s", "—",
                         "includes the upload"))

        # 3. download throughput vs obstore's raw get. Each timed run starts from a clean
        # page cache (os.sync(), untimed): a raw get leaves its bytes dirty, and their
        # writeback would otherwise slow whichever download comes next. The order alternates.
        floats = (16 if args.quick else 64) * (1 << 20) // 4
        big = _export(work / "big", floats)
        url3 = f"s3://{bucket}/throughput/m"
        publish(big, url3)
        client = Client(open_remote(url3))
        objs = list_version(client, "1", 1)
        _, plan = judge(client, objs, ("serve",))
        assert plan is not None
        size = plan.total_bytes

        def raw_get(dest: Path, durable: bool) -> None:
            for rel, _, _ in plan.files:
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                with open(dest / rel, "wb") as f:
                    for chunk in obstore.get(client.remote.store, f"1/{rel}").stream():
                        f.write(chunk)
                    if durable:
                        f.flush()
                        os.fsync(f.fileno())

        def mirror_download(dest: Path) -> None:
            cache = Cache(dest, "m")
            cache.prepare()
            download(client, cache, plan)

        runs: dict[str, Callable[[Path], None]] = {
            "raw": functools.partial(raw_get, durable=False),
            "raw+fsync": functools.partial(raw_get, durable=True),
            "mirror": mirror_download}
        times: dict[str, list[float]] = {name: [] for name in runs}
        for i in range(7 if args.quick else 15):
            for name in (list(runs) if i % 2 else list(reversed(runs))):
                dest = work / f"dl-{name}-{i}"
                os.sync()
                t0 = time.perf_counter()
                runs[name](dest)
                times[name].append(time.perf_counter() - t0)
                shutil.rmtree(dest)
        raw, durable, mine = (statistics.median(times[n]) for n in ("raw", "raw+fsync", "mirror"))
        rows.append((f"download {size / 2**20:.0f} MiB", f"{size / mine / 2**20:.0f} MiB/s",
                     ">= 0.9x raw get", f"{size / raw / 2**20:.0f} MiB/s raw get, ratio "
                     f"{raw / mine:.2f}x; raw get + fsync {size / durable / 2**20:.0f} MiB/s, "
                     f"ratio {durable / mine:.2f}x (medians)"))
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        rows.append(("load average (1, 5, 15 min) at the end", load, "—", "—"))
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    width = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in [("figure", "measured", "target", "baseline (same run)"), *rows]:
        print(" | ".join(c.ljust(w) for c, w in zip(r, width, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
