"""SQS: long-poll a queue of the bucket's S3 event notifications (direct, SNS-wrapped or
EventBridge); each names objects that changed, routed to mirrors by `hints.Hints`.
obstore does not do queues, so this is the one place boto3 is used.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote_plus

from .hints import Hints

__all__ = ["QueueHints", "changed_objects"]

_REGION = re.compile(r"sqs[.-]([a-z0-9-]+)\.amazonaws\.com")


def changed_objects(body: str) -> Iterator[tuple[str, str]]:
    """(bucket, key) of each object an S3 notification names: direct, SNS-wrapped or
    EventBridge. Test events and other messages name none; bad JSON raises ValueError."""
    doc = json.loads(body)
    if isinstance(doc, dict) and doc.get("Type") == "Notification" and "Message" in doc:
        doc = json.loads(doc["Message"])
    if not isinstance(doc, dict):
        return
    if isinstance(doc.get("detail"), dict):  # EventBridge
        detail = doc["detail"]
        yield detail["bucket"]["name"], detail["object"]["key"]
        return
    for record in doc.get("Records") or []:
        s3 = record.get("s3") if isinstance(record, dict) else None
        if isinstance(s3, dict):
            yield s3["bucket"]["name"], unquote_plus(s3["object"]["key"])


class QueueHints(Hints):
    """One thread long-polling the SQS queue `queue_url`."""

    kind = "sqs"

    def __init__(self, queue_url: str, *, wait_seconds: int = 20, sqs: Any = None,
                 retry_initial: float = 1.0, retry_max: float = 60.0) -> None:
        super().__init__(queue_url, wait_seconds=wait_seconds, retry_initial=retry_initial,
                         retry_max=retry_max)
        self._sqs = sqs
        self._owned = sqs is None

    @property
    def queue_url(self) -> str:
        return self.queue

    def handle(self, body: str) -> int:
        """Poke the mirrors one message concerns (each once); return how many."""
        try:
            objects = list(changed_objects(body))
            if not all(isinstance(b, str) and isinstance(k, str) for b, k in objects):
                raise TypeError("a bucket or key that is not a string")
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            # counted and acknowledged: a malformed message must not fail the whole batch,
            # which would then come back (and fail) again and again
            self.counters.add("bad_messages")
            return 0
        return self.poke_objects(objects)

    def _client(self) -> Any:
        if self._sqs is None:
            import boto3

            match = _REGION.search(self.queue)  # botocore reads AWS_DEFAULT_REGION only
            region = (os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
                      or (match.group(1) if match else "us-east-1"))
            self._sqs = boto3.client("sqs", region_name=region)
        return self._sqs

    def close(self) -> None:
        if self._owned and self._sqs is not None:
            self._sqs.close()
            self._sqs = None

    def receive_once(self) -> int:
        sqs = self._client()
        reply = sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10,
                                    WaitTimeSeconds=self._wait)
        messages = reply.get("Messages", [])
        for message in messages:
            self.handle(message.get("Body", ""))
        if messages:
            sqs.delete_message_batch(QueueUrl=self.queue, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                for i, m in enumerate(messages)])
        self.counters.add("messages", len(messages))
        return len(messages)
