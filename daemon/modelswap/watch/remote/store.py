"""Open a remote base path (`s3://`, `gs://`, `az://`, `file://`, `memory://`) as an obstore store.

Credentials come from each cloud's standard chain, read by obstore itself (for S3:
`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
`AWS_REGION`, web identity, instance roles). A plain `http://` endpoint (MinIO, moto, an
emulator) is allowed when the environment names one. `memory://NAME/prefix` is one
in-process store per NAME, shared by every `open_remote` of it (for tests and demos).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from obstore.store import MemoryStore, from_url

from modelswap.config.remote import CLOUD_SCHEMES, REMOTE_SCHEMES

from .errors import RemoteError, classify, redact

if TYPE_CHECKING:
    from obstore.store import ClientConfig, ObjectStore, RetryConfig

__all__ = ["REMOTE_SCHEMES", "Remote", "is_remote", "open_remote"]

_CLOUD = CLOUD_SCHEMES
_ENDPOINT_VARS = {
    "s3": ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"),
    "gcs": ("GOOGLE_CLOUD_STORAGE_URL", "GOOGLE_BASE_URL", "STORAGE_EMULATOR_HOST"),
    "azure": ("AZURE_STORAGE_ENDPOINT", "AZURE_ENDPOINT", "AZURITE_BLOB_STORAGE_URL"),
}
_NO_DEADLINE = timedelta(days=7)  # a total deadline would cut a large download short
_memory: dict[str, MemoryStore] = {}
_memory_lock = threading.Lock()


def is_remote(base_path: str) -> bool:
    """True if `base_path` is a URL this package mirrors (rather than a local folder)."""
    scheme, sep, _ = base_path.partition("://")
    return bool(sep) and scheme.lower() in REMOTE_SCHEMES


@dataclass(frozen=True)
class Remote:
    """An opened base path: obstore `store`, plus `root` (a key prefix obstore does not
    apply itself; empty unless `memory://`). `url` is redacted, safe to show."""

    url: str
    store: ObjectStore = field(repr=False)
    root: str = ""

    def key(self, rel: str) -> str:
        """The store key of `rel`, a path relative to the base path."""
        return f"{self.root}{rel}"


def _allow_http(cloud: str) -> bool:
    return any(os.environ.get(var, "").startswith("http://") for var in _ENDPOINT_VARS[cloud])


def open_remote(url: str, *, stall_timeout: float = 30.0, connect_timeout: float = 5.0,
                max_retries: int = 2, retry_timeout: float = 300.0,
                mkdir: bool = False) -> Remote:
    """Open `url` as a `Remote`. A request fails once no byte arrived for `stall_timeout`
    (never for merely being long: a shard may take minutes); obstore retries or resumes
    it `max_retries` times within `retry_timeout`; the caller's own backoff covers longer
    outages. `mkdir` creates a missing `file://` folder. Raises `RemoteError` (kind
    "invalid" for a URL or configuration that cannot work)."""
    shown = redact(url)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in REMOTE_SCHEMES:
        raise RemoteError("invalid", f"{shown}: unsupported scheme {scheme!r} "
                                     f"(use one of {', '.join(sorted(REMOTE_SCHEMES))})")
    if parts.query or parts.fragment:
        raise RemoteError("invalid", f"{shown}: query strings and fragments are not supported")
    if scheme == "memory":
        if not parts.netloc:
            raise RemoteError("invalid", f"{shown}: expected memory://NAME/prefix")
        with _memory_lock:
            store = _memory.setdefault(parts.netloc, MemoryStore())
        prefix = parts.path.strip("/")
        return Remote(shown, store, f"{prefix}/" if prefix else "")
    try:
        if scheme == "file":
            return Remote(shown, from_url(url, mkdir=mkdir))
        cloud = _CLOUD[scheme]
        if not parts.netloc:
            raise RemoteError("invalid", f"{shown}: no bucket or container in the URL")
        client: ClientConfig = {"timeout": _NO_DEADLINE,  # object_store's default is 30 s
                                "read_timeout": timedelta(seconds=stall_timeout),
                                "connect_timeout": timedelta(seconds=connect_timeout),
                                "allow_http": _allow_http(cloud)}
        retry: RetryConfig = {"max_retries": max_retries,
                              "retry_timeout": timedelta(seconds=retry_timeout)}
        return Remote(shown, from_url(url, client_options=client, retry_config=retry))
    except RemoteError:
        raise
    except Exception as e:  # obstore raises its own classes, or ValueError for bad config
        err = classify(e)  # a cloud store that cannot be built is misconfigured for good;
        kind = err.kind if scheme == "file" else "invalid"  # a folder may yet be mounted
        raise RemoteError(kind, f"{shown}: {err}") from None
