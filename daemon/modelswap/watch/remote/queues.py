"""Which receiver a `remote.queue` names: Pub/Sub or SQS."""

from __future__ import annotations

from modelswap.config.remote import queue_kind

from .hints import Hints


def open_hints(queue: str, **options: float) -> Hints:
    """The receiver for a valid `remote.queue`: Pub/Sub for `projects/P/subscriptions/S`,
    SQS for a queue URL (`options`: wait_seconds, retry_initial, retry_max)."""
    wait = int(options.pop("wait_seconds", 20))
    if queue_kind(queue) == "pubsub":
        from .pubsub import PubSubHints  # google-cloud-pubsub: imported only when used

        return PubSubHints(queue, wait_seconds=wait, **options)
    from .sqs import QueueHints  # boto3: imported only when used

    return QueueHints(queue, wait_seconds=wait, **options)
