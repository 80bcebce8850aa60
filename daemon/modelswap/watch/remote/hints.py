"""Optional push: one thread receiving a bucket's event notifications, poking mirrors.

`remote.queue` names where the notifications arrive: an SQS queue (S3, `sqs.QueueHints`)
or a Pub/Sub subscription (GCS, `pubsub.PubSubHints`). Both only say which objects changed;
the mirrors whose base path holds one are poked to list now. A notification is a hint: a
duplicate costs one listing, a lost one waits for the next poll, an old or reordered one
changes nothing (the listing is the truth). This module holds what both share: routing
objects to mirrors, the receive loop with its backoff, start and stop.
"""

from __future__ import annotations

import importlib.util
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from modelswap.config.remote import QueueKind, queue_kind
from modelswap.logger import get_logger

from .client import Counters
from .errors import classify, redact

__all__ = ["Hints", "missing_client"]

log = get_logger("modelswap.remote")
Route = tuple[str, str, Callable[[], None]]
_CLIENTS: dict[QueueKind, tuple[str, str, str]] = {  # module, distribution, extra
    "sqs": ("boto3", "boto3", "modelswap[remote]"),
    "pubsub": ("google.cloud.pubsub_v1", "google-cloud-pubsub", "modelswap[gcs]"),
}


def missing_client(queue: str) -> str | None:
    """Why `queue` cannot be listened to here (its client library is not installed), or
    None. Checked when a config is prepared, so the error names `remote.queue`."""
    module, distribution, extra = _CLIENTS[queue_kind(queue)]
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package (google.cloud) is missing
        found = False
    if found:
        return None
    what = "a Pub/Sub subscription" if queue_kind(queue) == "pubsub" else "an SQS queue"
    return f"{what} needs {distribution}: pip install '{extra}'"


class Hints(ABC):
    """Receive notifications from `queue` on one thread; `add(url, poke)` routes a base
    path's changes. Subclasses receive (`receive_once`) and parse messages."""

    kind: QueueKind

    def __init__(self, queue: str, *, wait_seconds: int = 20, retry_initial: float = 1.0,
                 retry_max: float = 60.0) -> None:
        self.queue = queue
        self.counters = Counters()
        self._wait = wait_seconds
        self._retry = (retry_initial, retry_max)
        self._routes: list[Route] = []
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def _route(url: str, poke: Callable[[], None]) -> Route:
        parts = urlsplit(url)
        prefix = parts.path.strip("/")
        return parts.netloc, f"{prefix}/" if prefix else "", poke

    def add(self, url: str, poke: Callable[[], None]) -> None:
        """Poke `poke` for changes under the base path `url` (`s3://bucket/prefix`,
        `gs://bucket/prefix`, `memory://NAME/prefix`: its bucket and key prefix)."""
        self._routes = [*self._routes, self._route(url, poke)]

    def set_routes(self, routes: list[tuple[str, Callable[[], None]]]) -> None:
        """Replace every route at once (a config reload): [(base path URL, poke)]."""
        self._routes = [self._route(url, poke) for url, poke in routes]

    def poke_objects(self, objects: Iterable[tuple[str, str]]) -> int:
        """Poke each mirror holding one of `objects` (bucket, key) once; return how many."""
        changed = list(objects)
        hit = [poke for bucket, prefix, poke in self._routes
               if any(b == bucket and k.startswith(prefix) for b, k in changed)]
        for poke in hit:
            poke()
        self.counters.add("hints", len(hit))
        return len(hit)

    @abstractmethod
    def receive_once(self) -> int:
        """One long poll (at most `wait_seconds`): handle what arrived, acknowledge it;
        return the number of messages."""

    def close(self) -> None:  # noqa: B027 (most clients need nothing)
        """Release the client's connections (called by the receiving thread as it ends)."""

    def _run(self) -> None:
        failures = 0
        shown = redact(self.queue)
        while not self._stopping.is_set():
            try:
                self.receive_once()
            except Exception as e:
                failures += 1
                self.counters.add("errors")
                if failures == 1:
                    log.warning("remote_queue_unreachable", queue=shown, kind=self.kind,
                                error=str(classify(e)))
                initial, most = self._retry  # the exponent capped: a float overflows
                self._stopping.wait(min(most, initial * 2 ** min(failures - 1, 32)))
                continue
            if failures:
                log.info("remote_queue_reachable", queue=shown, kind=self.kind)
            failures = 0
        self.close()

    def start(self) -> Hints:
        self._thread = threading.Thread(target=self._run, name="modelswap-remote-queue",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop after the long poll in flight (at most `wait_seconds`)."""
        self._stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout if timeout is not None else self._wait + 10)
