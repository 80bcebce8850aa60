"""Optional push: long-poll an SQS queue of the bucket's event notifications.

Each message names objects that changed; the mirrors whose base path holds one are poked
to re-list now. Notifications are hints: a duplicate costs one extra listing, a lost one
waits for the next poll, a reordered one changes nothing (the listing is the truth).
obstore does not do queues, so this is the one place boto3 is used.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote_plus, urlsplit

from modelswap.logger import get_logger

from .client import Counters
from .errors import classify, redact

__all__ = ["QueueHints", "changed_objects"]

log = get_logger("modelswap.remote")
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


class QueueHints:
    """One thread long-polling `queue_url`; `add(url, poke)` routes a base path's changes."""

    def __init__(self, queue_url: str, *, wait_seconds: int = 20, sqs: Any = None,
                 retry_initial: float = 1.0, retry_max: float = 60.0) -> None:
        self.queue_url = queue_url
        self.counters = Counters()
        self._wait = wait_seconds
        self._sqs = sqs
        self._retry = (retry_initial, retry_max)
        self._routes: list[tuple[str, str, Callable[[], None]]] = []
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def _route(url: str, poke: Callable[[], None]) -> tuple[str, str, Callable[[], None]]:
        parts = urlsplit(url)
        prefix = parts.path.strip("/")
        return parts.netloc, f"{prefix}/" if prefix else "", poke

    def add(self, url: str, poke: Callable[[], None]) -> None:
        """Poke `poke` for changes under the `s3://bucket/prefix` base path `url`."""
        self._routes = [*self._routes, self._route(url, poke)]

    def set_routes(self, routes: list[tuple[str, Callable[[], None]]]) -> None:
        """Replace every route at once (a config reload): [(base path URL, poke)]."""
        self._routes = [self._route(url, poke) for url, poke in routes]

    def handle(self, body: str) -> int:
        """Poke the mirrors one message concerns (each once); return how many."""
        try:
            objects = list(changed_objects(body))
        except (ValueError, KeyError, TypeError):
            self.counters.add("bad_messages")
            return 0
        hit = [poke for bucket, prefix, poke in self._routes
               if any(b == bucket and k.startswith(prefix) for b, k in objects)]
        for poke in hit:
            poke()
        self.counters.add("hints", len(hit))
        return len(hit)

    def _client(self) -> Any:
        if self._sqs is None:
            import boto3

            match = _REGION.search(self.queue_url)  # botocore reads AWS_DEFAULT_REGION only
            region = (os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
                      or (match.group(1) if match else "us-east-1"))
            self._sqs = boto3.client("sqs", region_name=region)
        return self._sqs

    def receive_once(self) -> int:
        """One long poll: handle and delete what arrived; return the number of messages."""
        sqs = self._client()
        reply = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                    WaitTimeSeconds=self._wait)
        messages = reply.get("Messages", [])
        for message in messages:
            self.handle(message.get("Body", ""))
        if messages:
            sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                for i, m in enumerate(messages)])
        self.counters.add("messages", len(messages))
        return len(messages)

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                self.receive_once()
            except Exception as e:
                failures += 1
                self.counters.add("errors")
                if failures == 1:
                    log.warning("remote_queue_unreachable", queue=redact(self.queue_url),
                                error=str(classify(e)))
                initial, most = self._retry
                self._stopping.wait(min(most, initial * 2 ** (failures - 1)))
                continue
            if failures:
                log.info("remote_queue_reachable", queue=redact(self.queue_url))
            failures = 0

    def start(self) -> QueueHints:
        self._thread = threading.Thread(target=self._run, name="modelswap-remote-queue",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop after the long poll in flight (at most `wait_seconds`)."""
        self._stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout if timeout is not None else self._wait + 10)
