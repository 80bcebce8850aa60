"""Pub/Sub: pull a subscription of a bucket's Cloud Storage notifications.

GCS publishes one message per object change to a topic (`gcloud storage buckets
notifications create gs://BUCKET --topic=T`): attributes `bucketId`, `objectId`,
`eventType` (`OBJECT_FINALIZE`, `OBJECT_DELETE`, ...) and, with the `JSON_API_V1` payload,
the object's JSON as data. Each names one object, routed to mirrors by `hints.Hints`.
Messages are acknowledged once handled; one synchronous pull is open at a time. The
client is google-cloud-pubsub (extra `[gcs]`), which reads Google's standard credential
chain and honours `PUBSUB_EMULATOR_HOST`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .hints import Hints

__all__ = ["IGNORED_EVENTS", "PubSubHints", "changed_objects"]

# a metadata change leaves the bytes as they were: no listing for it
IGNORED_EVENTS = frozenset({"OBJECT_METADATA_UPDATE"})


def changed_objects(attributes: Mapping[str, str], data: bytes) -> list[tuple[str, str]]:
    """(bucket, object) a Cloud Storage notification names: from its attributes, else from
    its JSON payload; none for an ignored event type. Anything else raises ValueError."""
    if attributes.get("eventType") in IGNORED_EVENTS:
        return []
    bucket, name = attributes.get("bucketId"), attributes.get("objectId")
    if bucket and name:
        return [(bucket, name)]
    doc = json.loads(data)
    if isinstance(doc, dict) and isinstance(doc.get("bucket"), str) \
            and isinstance(doc.get("name"), str):
        return [(doc["bucket"], doc["name"])]
    raise ValueError("not a Cloud Storage notification")


class PubSubHints(Hints):
    """One thread pulling the subscription `projects/P/subscriptions/S`."""

    kind = "pubsub"

    def __init__(self, subscription: str, *, wait_seconds: int = 20, subscriber: Any = None,
                 retry_initial: float = 1.0, retry_max: float = 60.0) -> None:
        super().__init__(subscription, wait_seconds=wait_seconds, retry_initial=retry_initial,
                         retry_max=retry_max)
        self._subscriber = subscriber
        self._owned = subscriber is None

    def handle(self, attributes: Mapping[str, str], data: bytes) -> int:
        """Poke the mirrors one message concerns; return how many."""
        try:
            objects = changed_objects(attributes, data)
        except (ValueError, UnicodeDecodeError, RecursionError):  # JSON nested too deep
            self.counters.add("bad_messages")
            return 0
        return self.poke_objects(objects)

    def _client(self) -> Any:
        if self._subscriber is None:
            from google.cloud import pubsub_v1

            self._subscriber = pubsub_v1.SubscriberClient()
        return self._subscriber

    def close(self) -> None:
        if self._owned and self._subscriber is not None:
            self._subscriber.close()
            self._subscriber = None

    def receive_once(self) -> int:
        from google.api_core.exceptions import DeadlineExceeded

        client = self._client()
        try:  # no client-side retry: a failure backs off in `Hints._run`, logged once
            reply = client.pull(request={"subscription": self.queue, "max_messages": 10},
                                timeout=self._wait, retry=None)
        except DeadlineExceeded:  # nothing arrived within the wait
            return 0
        messages = list(reply.received_messages)
        for received in messages:
            self.handle(dict(received.message.attributes), bytes(received.message.data))
        if messages:
            client.acknowledge(request={"subscription": self.queue,
                                        "ack_ids": [m.ack_id for m in messages]},
                               timeout=self._wait)
        self.counters.add("messages", len(messages))
        return len(messages)
