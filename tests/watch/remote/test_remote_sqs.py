"""SQS hints against moto's real SQS: notifications poke; duplicates, reorders, losses converge."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from modelswap.watch.remote import Mirror, QueueHints, RemoteConfig, publish
from modelswap.watch.remote.sqs import changed_objects
from watch.remote.remote_helpers import Models, wait_for


def s3_event(bucket: str, key: str, name: str = "ObjectCreated:Put") -> str:
    return json.dumps({"Records": [{"eventSource": "aws:s3", "eventName": name,
                                    "s3": {"bucket": {"name": bucket},
                                           "object": {"key": key.replace(" ", "+")}}}]})


@pytest.fixture
def queue(aws_env: str) -> tuple[Any, str]:
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:10]}")["QueueUrl"]
    return sqs, url


def mirrored(mirror: Mirror) -> set[int]:
    return {v.version for v in mirror.status().versions if v.state == "mirrored"}


def test_changed_objects_reads_every_envelope() -> None:
    direct = s3_event("b", "m/1/saved model.pb")
    sns = json.dumps({"Type": "Notification", "Message": direct})
    bridge = json.dumps({"detail-type": "Object Created",
                         "detail": {"bucket": {"name": "b"}, "object": {"key": "m/2/x"}}})
    assert list(changed_objects(direct)) == [("b", "m/1/saved model.pb")]
    assert list(changed_objects(sns)) == [("b", "m/1/saved model.pb")]
    assert list(changed_objects(bridge)) == [("b", "m/2/x")]
    assert list(changed_objects(json.dumps({"Event": "s3:TestEvent"}))) == []


def test_bucket_notifications_reach_the_mirror(
        tmp_path: Path, s3: Any, bucket: str, queue: tuple[Any, str], models: Models) -> None:
    sqs, queue_url = queue
    arn = sqs.get_queue_attributes(QueueUrl=queue_url,
                                   AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]})
    url = f"s3://{bucket}/prod/m"
    cfg = RemoteConfig(cache_dir=tmp_path / "cache", poll_interval=3600.0, queue=queue_url)
    with Mirror("m", url, cfg) as mirror:
        wait_for(lambda: mirror.status().reachable, what="first listing")
        hints = QueueHints(queue_url, wait_seconds=1)
        hints.add(url, mirror.poke)
        hints.start()
        try:
            publish(models.get("a"), url)  # no poll is due for an hour: only the queue tells
            wait_for(lambda: mirrored(mirror) == {1}, what="mirrored through the queue")
        finally:
            hints.stop()
    assert hints.counters.snapshot()["hints"] >= 1


def test_duplicated_reordered_and_lost_events_converge(
        tmp_path: Path, bucket: str, queue: tuple[Any, str], models: Models) -> None:
    sqs, queue_url = queue
    url = f"s3://{bucket}/m"
    cfg = RemoteConfig(cache_dir=tmp_path / "cache", poll_interval=3600.0)
    hints = QueueHints(queue_url, wait_seconds=1)

    def send(*bodies: str) -> None:
        for body in bodies:
            sqs.send_message(QueueUrl=queue_url, MessageBody=body)

    with Mirror("m", url, cfg) as mirror:
        wait_for(lambda: mirror.status().reachable, what="first listing")
        hints.add(url, mirror.poke)
        hints.add(f"s3://{bucket}/other", lambda: None)
        hints.start()
        try:
            publish(models.get("a"), url)
            publish(models.get("b"), url)
            manifest2 = s3_event(bucket, "m/2/_modelswap_manifest.json")
            send(manifest2, manifest2, "not json at all", s3_event("elsewhere", "m/1/x"),
                 manifest2, s3_event(bucket, "m/1/saved_model.pb"))  # dup, junk, old last
            wait_for(lambda: mirrored(mirror) == {1, 2}, what="v1 and v2 mirrored")
            publish(models.get("c"), url)  # its events are lost...
            send(json.dumps({"Type": "Notification", "Message": s3_event(bucket, "m/README")}))
            wait_for(lambda: mirrored(mirror) == {1, 2, 3}, what="v3 found by the next listing")
        finally:
            hints.stop()
    counts = hints.counters.snapshot()
    assert counts["bad_messages"] == 1 and counts["messages"] == 7
    assert sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=[
        "ApproximateNumberOfMessages"])["Attributes"]["ApproximateNumberOfMessages"] == "0"


def test_malformed_messages_are_counted_and_never_stall_the_queue(
        tmp_path: Path, bucket: str, queue: tuple[Any, str], models: Models) -> None:
    """A message that parses as JSON but names a key that is no string, or nests too deep,
    is a bad message like any other: the batch it came in is handled and deleted (it used
    to raise out of the receive, so the whole batch came back again and again)."""
    sqs, queue_url = queue
    url = f"s3://{bucket}/m"
    cfg = RemoteConfig(cache_dir=tmp_path / "cache", poll_interval=3600.0)
    publish(models.get("a"), url)
    bad = [json.dumps({"Records": [{"s3": {"bucket": {"name": bucket}, "object": {"key": 5}}}]}),
           json.dumps({"detail": {"bucket": {"name": bucket}, "object": {"key": ["m/1"]}}}),
           "[" * 100_000]
    for body in [*bad, s3_event(bucket, "m/1/_modelswap_manifest.json")]:
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    hints = QueueHints(queue_url, wait_seconds=1)
    with Mirror("m", url, cfg) as mirror:
        wait_for(lambda: mirror.status().reachable, what="first listing")
        hints.add(url, mirror.poke)
        hints.start()
        try:
            wait_for(lambda: hints.counters.snapshot().get("messages") == 4, what="4 handled")
            wait_for(lambda: mirrored(mirror) == {1}, what="v1 mirrored through the queue")
        finally:
            hints.stop()
    counts = hints.counters.snapshot()
    assert counts["bad_messages"] == 3 and counts["errors"] == 0
    assert sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"] \
        == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}
