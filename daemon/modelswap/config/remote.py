"""Remote base paths (`s3://`, `gs://`, `az://`, `file://`, `memory://`) and the `remote:`
section: where they are mirrored on local disk and how often their stores are listed.

A model whose `base_path` is a URL keeps it as `source_url`; its `base_path` becomes the
local folder the pipeline watches, `<remote.cache_dir>/<name>`. Nothing here talks to a
store (obstore is an optional extra); opening one is `modelswap.watch.remote`'s job.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, Field, StrictStr

from modelswap.config.types import (
    FROZEN,
    Duration,
    PositiveDuration,
    PositiveInt,
    ResolvedPath,
    Size,
    resolve_path,
)

__all__ = [
    "CLOUD_SCHEMES",
    "REMOTE_SCHEMES",
    "QueueKind",
    "RemoteConfig",
    "cache_dir_of",
    "default_cache_dir",
    "is_url",
    "queue_kind",
    "split_remote",
    "validate_queue",
    "validate_url",
]

CLOUD_SCHEMES = {"s3": "s3", "s3a": "s3", "gs": "gcs", "az": "azure", "azure": "azure",
                 "abfs": "azure", "abfss": "azure", "adl": "azure"}
REMOTE_SCHEMES = frozenset({*CLOUD_SCHEMES, "file", "memory"})
MIN_FREE = 64 << 20
QueueKind = Literal["sqs", "pubsub"]
# projects/PROJECT/subscriptions/NAME: a project id (maybe domain-scoped, example.com:p) and
# a subscription name as Pub/Sub allows them (3-255 characters, starting with a letter)
_SUBSCRIPTION = re.compile(r"projects/(?:[a-z][a-z0-9.-]*[a-z0-9]:)?[a-z](?:[a-z0-9-]*[a-z0-9])?"
                           r"/subscriptions/[A-Za-z][A-Za-z0-9._~+%-]{2,254}")
_QUEUE_FORMS = ("an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME) or a "
                "Pub/Sub subscription (projects/PROJECT/subscriptions/NAME)")


def default_cache_dir() -> Path:
    """systemd's `$CACHE_DIRECTORY` (first entry) when set, else `~/.cache/modelswap`."""
    first = os.environ.get("CACHE_DIRECTORY", "").split(":")[0]
    return Path(first) if first else Path.home() / ".cache" / "modelswap"


def is_url(value: object) -> bool:
    """True for `scheme://...` strings (a base path meant as a URL, valid or not)."""
    if not isinstance(value, str):
        return False
    scheme, sep, _ = value.partition("://")
    return bool(sep) and bool(scheme) and scheme.replace("+", "").replace("-", "").isalnum()


def _shown(url: str) -> str:
    parts = urlsplit(url)
    if "@" in parts.netloc and ":" in parts.netloc.split("@", 1)[0]:
        url = url.replace(parts.netloc, "***@" + parts.netloc.rsplit("@", 1)[1])
    return url.split("?", 1)[0]  # a query string may carry a signature or token


def validate_url(url: str) -> str:
    """`url` if it names a remote base path modelswap can mirror, else a ValueError that
    says why (never echoing a password or query string)."""
    shown = _shown(url)
    try:
        parts = urlsplit(url)
    except ValueError as e:
        raise ValueError(f"{shown}: not a valid URL ({e})") from None
    scheme = parts.scheme.lower()
    if scheme not in REMOTE_SCHEMES:
        raise ValueError(f"unsupported URL scheme {scheme!r} in {shown!r}: use a local path, "
                         "s3://, gs://, az://, file:// or memory://")
    if parts.query or parts.fragment:
        raise ValueError(f"{shown}: query strings and fragments are not supported")
    if parts.password is not None:
        raise ValueError(f"{shown}: credentials do not belong in the URL; use the "
                         "cloud's environment or credential chain")
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ValueError(f"{shown}: expected file:///absolute/path")
    elif not parts.netloc:
        what = "NAME" if scheme == "memory" else "BUCKET"
        raise ValueError(f"{shown}: expected {scheme}://{what}/prefix")
    return url


def queue_kind(queue: str) -> QueueKind:
    """Which service a valid `remote.queue` names: a Pub/Sub subscription or an SQS queue."""
    return "pubsub" if queue.startswith("projects/") else "sqs"


def validate_queue(queue: str) -> str:
    """`queue` if it names an SQS queue by URL or a Pub/Sub subscription by its full name,
    else a ValueError that says which forms are accepted (never echoing a query string)."""
    shown = _shown(queue)
    if queue.startswith("projects/"):
        if "/topics/" in queue:
            raise ValueError(f"{shown!r} is a Pub/Sub topic: name a subscription to it "
                             "(projects/PROJECT/subscriptions/NAME)")
        if not _SUBSCRIPTION.fullmatch(queue) or queue.rsplit("/", 1)[1].startswith("goog"):
            raise ValueError(f"{shown!r}: not a Pub/Sub subscription name; expected "
                             "projects/PROJECT/subscriptions/NAME")
        return queue
    if queue.startswith("arn:"):
        raise ValueError(f"{shown!r}: name the SQS queue by its URL "
                         "(https://sqs.REGION.amazonaws.com/ACCOUNT/NAME), not its ARN")
    try:
        parts = urlsplit(queue)
    except ValueError:
        parts = urlsplit("")
    if parts.scheme not in ("https", "http") or not parts.netloc or not parts.path.strip("/"):
        raise ValueError(f"{shown!r}: expected {_QUEUE_FORMS}")
    if parts.password is not None:
        raise ValueError(f"{shown}: credentials do not belong in the queue URL")
    return queue


def split_remote(model: object, cache_dir: Path, *, only_urls: bool = False) -> object:
    """A model mapping whose `base_path` is a URL (or, unless `only_urls`, which has a
    `source_url`), rewritten to `source_url: URL` and `base_path: <cache_dir>/<name>`;
    anything else unchanged."""
    if not isinstance(model, Mapping):
        return model
    url = None if only_urls else model.get("source_url")
    if is_url(model.get("base_path")):
        url = model["base_path"]
    if url is None:
        return model
    name = model.get("name")
    folder = name if isinstance(name, str) and name and "/" not in name else "_"
    return {**model, "source_url": url, "base_path": str(cache_dir / folder)}


def cache_dir_of(section: object, base_dir: object) -> Path:
    """The cache folder a raw `remote:` section names (the default if it names none or
    a bad one: that error is reported at its own key)."""
    raw = section.get("cache_dir") if isinstance(section, Mapping) else None
    try:
        return resolve_path(raw, base_dir) if raw is not None else default_cache_dir()
    except ValueError:
        return default_cache_dir()


class RemoteConfig(BaseModel):
    """How remote base paths are mirrored to local disk (the `remote:` section).

    `cache_dir` holds `<model>/<N>` folders (default systemd's `$CACHE_DIRECTORY`, else
    `~/.cache/modelswap`); at most `max_downloads` versions download at once, process-wide,
    and none starts unless `min_free` bytes stay free after it. Each store is listed every
    `poll_interval` (±`poll_jitter`, so a fleet does not list in step); a request with no
    byte for `stall_timeout` fails. `queue` receives the buckets' event notifications:
    an SQS queue URL (S3) or a Pub/Sub subscription `projects/P/subscriptions/S` (GCS);
    they are hints to list now, never the truth.
    """

    model_config = FROZEN
    cache_dir: ResolvedPath = Field(default_factory=default_cache_dir)
    max_downloads: PositiveInt = 2
    poll_interval: PositiveDuration = 30.0
    poll_jitter: Annotated[float, Field(ge=0, lt=1)] = 0.2
    stall_timeout: PositiveDuration = 30.0
    min_free: Size = MIN_FREE
    queue: Annotated[StrictStr, AfterValidator(validate_queue)] | None = None
    # a fleet's members each wait their own offset in [0, swap_jitter) before loading a new
    # version beside the served one (docs/fleet.md), so a fleet never loads it all at once
    swap_jitter: Annotated[Duration, Field(ge=0)] = 0.0
