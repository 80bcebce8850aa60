"""Pub/Sub hints (GCS notifications) against the real Pub/Sub emulator on 127.0.0.1.

The emulator (Google's `google-cloud-cli-pubsub-emulator` package, a Java server) is started
and stopped here; where it is not installed these tests skip and say so. The hints drive
mirrors of `memory://` stores (the bucket is the store's NAME): what a notification says
is routed exactly as a GCS bucket's would be, and the listing stays the truth.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from modelswap.watch.remote import Mirror, PubSubHints, RemoteConfig, open_hints, publish
from modelswap.watch.remote.pubsub import changed_objects
from watch.remote.remote_helpers import TIMEOUT, Models, Proxy, wait_for

PROJECT = "modelswap-test"


def gcs_event(bucket: str, name: str, event: str = "OBJECT_FINALIZE",
              payload: bool = True) -> tuple[bytes, dict[str, str]]:
    """(data, attributes) of a Cloud Storage notification as GCS publishes it."""
    attributes = {"bucketId": bucket, "objectId": name, "eventType": event,
                  "payloadFormat": "JSON_API_V1" if payload else "NONE",
                  "notificationConfig": f"projects/_/buckets/{bucket}/notificationConfigs/1",
                  "objectGeneration": "1700000000000000"}
    data = json.dumps({"kind": "storage#object", "bucket": bucket, "name": name,
                       "size": "1"}).encode() if payload else b""
    return data, attributes


def test_changed_objects_reads_gcs_notifications() -> None:
    data, attributes = gcs_event("b", "m/1/saved model.pb")
    assert changed_objects(attributes, data) == [("b", "m/1/saved model.pb")]
    assert changed_objects({}, data) == [("b", "m/1/saved model.pb")]  # from the payload
    assert changed_objects(*reversed(gcs_event("b", "m/2/x", "OBJECT_DELETE", False))) == [
        ("b", "m/2/x")]
    assert changed_objects(*reversed(gcs_event("b", "m/2/x", "OBJECT_METADATA_UPDATE"))) == []
    for junk in (b"", b"not json", b"[1]", b'{"bucket": "b"}'):
        with pytest.raises(ValueError):
            changed_objects({}, junk)


def emulator_command() -> list[str] | None:
    """The emulator's own launcher (what `gcloud beta emulators pubsub start` runs)."""
    roots = [Path("/usr/lib/google-cloud-sdk"), Path("/usr/share/google-cloud-sdk")]
    gcloud = shutil.which("gcloud")
    if gcloud:
        roots.insert(0, Path(os.path.realpath(gcloud)).parents[1])
    for root in roots:
        script = root / "platform" / "pubsub-emulator" / "bin" / "cloud-pubsub-emulator"
        if script.exists() and shutil.which("java"):
            return [str(script)]
    return None


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Pub/Sub emulator on 127.0.0.1 for this module: its host:port."""
    command = emulator_command()
    if command is None:
        pytest.skip("the Pub/Sub emulator is not installed (Google's apt package "
                    "google-cloud-cli-pubsub-emulator, and java): Pub/Sub hints untested here")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path_factory.mktemp("pubsub") / "emulator.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([*command, "--host=127.0.0.1", f"--port={port}"], stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: proc.poll() is not None or _listening(port), TIMEOUT * 2,
                 "the Pub/Sub emulator to listen")
        assert proc.poll() is None, log.read_text()
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Topic:
    """A topic with one subscription on the emulator; `send` publishes like GCS does."""

    def __init__(self) -> None:
        from google.cloud import pubsub_v1

        name = uuid.uuid4().hex[:10]
        self.publisher = pubsub_v1.PublisherClient()
        self.subscriber = pubsub_v1.SubscriberClient()
        self.topic = self.publisher.topic_path(PROJECT, f"gcs-{name}")
        self.subscription = self.subscriber.subscription_path(PROJECT, f"hints-{name}")
        self.publisher.create_topic(name=self.topic)
        self.subscriber.create_subscription(name=self.subscription, topic=self.topic)

    def send(self, data: bytes, attributes: dict[str, str]) -> None:
        self.publisher.publish(self.topic, data, **attributes).result(TIMEOUT)

    def backlog(self) -> int:
        """Messages left unacknowledged (pulled without acknowledging: they come back)."""
        reply = self.subscriber.pull(request={"subscription": self.subscription,
                                              "max_messages": 100}, timeout=5)
        return len(reply.received_messages)


@pytest.fixture
def topic(emulator: str, monkeypatch: pytest.MonkeyPatch) -> Topic:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", emulator)
    return Topic()


def store_url() -> tuple[str, str]:
    """(bucket, base path URL) of a fresh in-process store standing in for a GCS bucket."""
    bucket = f"gcs-{uuid.uuid4().hex[:10]}"
    return bucket, f"memory://{bucket}/prod/m"


def mirrored(mirror: Mirror) -> set[int]:
    return {v.version for v in mirror.status().versions if v.state == "mirrored"}


def test_gcs_notifications_reach_the_mirror(tmp_path: Path, topic: Topic,
                                            models: Models) -> None:
    bucket, url = store_url()
    cfg = RemoteConfig(cache_dir=tmp_path / "cache", poll_interval=3600.0,
                       queue=topic.subscription)
    hints = open_hints(topic.subscription, wait_seconds=1)
    assert isinstance(hints, PubSubHints)
    with Mirror("m", url, cfg) as mirror:
        wait_for(lambda: mirror.status().reachable, what="first listing")
        lists = mirror.status().counters["list"]
        hints.add(url, mirror.poke)
        hints.start()
        try:
            publish(models.get("a"), url)  # no poll is due for an hour: only the hint tells
            topic.send(*gcs_event(bucket, "prod/m/1/_modelswap_manifest.json"))
            wait_for(lambda: mirrored(mirror) == {1}, what="mirrored through Pub/Sub")
        finally:
            hints.stop()
        assert mirror.status().counters["list"] > lists
    counts = hints.counters.snapshot()
    assert counts["messages"] == 1 and counts["hints"] == 1
    assert topic.backlog() == 0  # acknowledged


def test_duplicated_reordered_and_lost_notifications_converge(
        tmp_path: Path, topic: Topic, models: Models) -> None:
    bucket, url = store_url()
    cfg = RemoteConfig(cache_dir=tmp_path / "cache", poll_interval=3600.0)
    hints = PubSubHints(topic.subscription, wait_seconds=1)
    others: list[int] = []
    with Mirror("m", url, cfg) as mirror:
        wait_for(lambda: mirror.status().reachable, what="first listing")
        hints.add(url, mirror.poke)
        hints.add(f"memory://{bucket}/prod/other", lambda: others.append(1))
        hints.start()
        try:
            publish(models.get("a"), url)
            publish(models.get("b"), url)
            manifest2 = gcs_event(bucket, "prod/m/2/_modelswap_manifest.json")
            for data, attributes in (
                    manifest2, manifest2, (b"not json at all", {}),
                    gcs_event("elsewhere", "prod/m/1/x"),
                    gcs_event(bucket, "prod/m/2/saved_model.pb", "OBJECT_METADATA_UPDATE"),
                    manifest2, gcs_event(bucket, "prod/m/1/saved_model.pb")):  # old, last
                topic.send(data, attributes)
            wait_for(lambda: mirrored(mirror) == {1, 2}, what="v1 and v2 mirrored")
            publish(models.get("c"), url)  # its notifications are lost...
            topic.send(*gcs_event(bucket, "prod/m/README", "OBJECT_DELETE", payload=False))
            wait_for(lambda: mirrored(mirror) == {1, 2, 3}, what="v3 found by the next listing")
            wait_for(lambda: hints.counters.snapshot()["messages"] == 8, what="all 8 pulled")
        finally:
            hints.stop()
    counts = hints.counters.snapshot()
    assert counts["bad_messages"] == 1 and others == []
    assert topic.backlog() == 0


def test_the_subscription_unreachable_then_back(tmp_path: Path, topic: Topic, models: Models,
                                                monkeypatch: pytest.MonkeyPatch,
                                                emulator: str) -> None:
    proxy = Proxy(int(emulator.rsplit(":", 1)[1]))
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{proxy.port}")
    bucket, url = store_url()
    cfg = RemoteConfig(cache_dir=tmp_path / "cache", poll_interval=3600.0)
    hints = PubSubHints(topic.subscription, wait_seconds=1, retry_initial=0.05, retry_max=0.5)
    try:
        with Mirror("m", url, cfg) as mirror, capture_logs() as logs:
            wait_for(lambda: mirror.status().reachable, what="first listing")
            hints.add(url, mirror.poke)
            proxy.refuse()
            hints.start()
            wait_for(lambda: hints.counters.snapshot()["errors"] >= 3, what="failed pulls")
            proxy.allow()
            publish(models.get("a"), url)
            topic.send(*gcs_event(bucket, "prod/m/1/_modelswap_manifest.json"))
            wait_for(lambda: mirrored(mirror) == {1}, what="mirrored once Pub/Sub is back")
            hints.stop()
    finally:
        hints.stop()
        proxy.close()
    queue_logs = [e for e in logs if e["event"].startswith("remote_queue")]
    assert [e["event"] for e in queue_logs] == [  # once per outage, not once per failure
        "remote_queue_unreachable", "remote_queue_reachable"]
    assert queue_logs[0]["kind"] == "pubsub" and topic.subscription in queue_logs[0]["queue"]


def test_a_config_naming_a_subscription_serves_through_it(
        tmp_path: Path, topic: Topic, models: Models, run_swap: Any) -> None:
    bucket, url = store_url()
    swap, _ = run_swap(f"models:\n  - name: m\n    base_path: {url}\n"
                       f"remote:\n  cache_dir: {tmp_path / 'cache'}\n  poll_interval: 1h\n"
                       f"  queue: {topic.subscription}\n")
    wait_for(lambda: swap.remote_status()["m"].reachable, what="first listing")
    publish(models.get("a"), url)
    topic.send(*gcs_event(bucket, "prod/m/1/_modelswap_manifest.json"))
    assert swap.wait_until_available("m", timeout=TIMEOUT) == 1
    with swap.acquire("m") as served:
        assert served.path == tmp_path / "cache" / "m" / "1"


def test_a_malformed_notification_is_counted_not_raised() -> None:
    """JSON nested too deep raises RecursionError, not ValueError: it must not escape the
    receive (the batch would never be acknowledged and would come back again and again)."""
    hints = PubSubHints(f"projects/{PROJECT}/subscriptions/never-pulled")
    hints.add("gs://b/m", lambda: None)
    assert hints.handle({}, b"[" * 100_000) == 0
    assert hints.handle({}, b"\xff\xfe not utf-8") == 0
    assert hints.handle({"bucketId": "b", "objectId": "m/1/x"}, b"") == 1
    assert hints.counters.snapshot()["bad_messages"] == 2
