"""Counted, typed calls to one remote base path.

Every call goes through here so that requests by kind and bytes downloaded are counted,
and every failure is a redacted `RemoteError`. Paths are relative to the base path.
A listing counts one request per page of 1,000 keys (S3's and GCS's page size).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import obstore

from .errors import classify

if TYPE_CHECKING:
    from obstore import ObjectMeta

    from .store import Remote

__all__ = ["Client", "Counters", "ObjectInfo"]

_PAGE = 1000
COUNTER_NAMES = ("list", "get", "head", "put", "delete", "bytes_downloaded", "bytes_uploaded",
                 "errors")


class Counters:
    """Thread-safe monotonic counters: requests by kind, bytes, errors."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys(COUNTER_NAMES, 0)

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._values[name] = self._values.get(name, 0) + n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)


@dataclass(frozen=True)
class ObjectInfo:
    """One listed object: `path` relative to the listed prefix's base path."""

    path: str
    size: int
    etag: str | None
    last_modified: str

    def identity(self) -> tuple[str, int, str]:
        """What changes when the object is rewritten (etag, else modification time)."""
        return (self.path, self.size, self.etag or self.last_modified)


class Client:
    """Store calls on one `Remote`, counted in `counters`."""

    def __init__(self, remote: Remote, counters: Counters | None = None) -> None:
        self.remote = remote
        self.counters = counters or Counters()

    def _info(self, meta: ObjectMeta) -> ObjectInfo:
        path = meta["path"].removeprefix(self.remote.root)
        return ObjectInfo(path, int(meta["size"]), meta.get("e_tag"),
                          meta["last_modified"].isoformat())

    def _fail(self, exc: BaseException) -> Exception:
        self.counters.add("errors")
        return classify(exc)

    def list_dir(self, rel: str = "") -> tuple[list[str], list[ObjectInfo]]:
        """One delimiter listing of `rel`: (names of its sub-prefixes, its objects)."""
        prefix = self.remote.key(rel).rstrip("/") or None
        try:
            result = obstore.list_with_delimiter(self.remote.store, prefix)
        except Exception as e:
            self.counters.add("list")
            raise self._fail(e) from None
        found = len(result["common_prefixes"]) + len(result["objects"])
        self.counters.add("list", max(1, math.ceil(found / _PAGE)))
        names = [p.rstrip("/").rsplit("/", 1)[-1] for p in result["common_prefixes"]]
        return names, [self._info(m) for m in result["objects"]]

    def list_all(self, rel: str) -> list[ObjectInfo]:
        """Every object under `rel/` (recursive), paths relative to the base path."""
        prefix = self.remote.key(rel.rstrip("/") + "/")
        found: list[ObjectInfo] = []
        try:
            for chunk in obstore.list(self.remote.store, prefix, chunk_size=_PAGE):
                found.extend(self._info(m) for m in chunk)
        except Exception as e:
            raise self._fail(e) from None
        finally:
            self.counters.add("list", max(1, math.ceil(len(found) / _PAGE)))
        return found

    def get_bytes(self, rel: str, *, if_match: str | None = None) -> bytes:
        """The whole object (for small ones: manifests, `saved_model.pb`, the index)."""
        return b"".join(self.stream(rel, if_match=if_match))

    def stream(self, rel: str, *, if_match: str | None = None,
               chunk: int = 8 << 20) -> Iterator[bytes]:
        """The object's bytes as they arrive; `if_match` fails with kind "changed" if the
        object is no longer the listed one."""
        self.counters.add("get")
        options = {"if_match": if_match} if if_match else {}
        try:
            result = obstore.get(self.remote.store, self.remote.key(rel),
                                 options=options)  # type: ignore[arg-type]
            for piece in result.stream(min_chunk_size=chunk):
                self.counters.add("bytes_downloaded", len(piece))
                yield bytes(piece)
        except Exception as e:
            raise self._fail(e) from None

    def head(self, rel: str) -> ObjectInfo:
        self.counters.add("head")
        try:
            return self._info(obstore.head(self.remote.store, self.remote.key(rel)))
        except Exception as e:
            raise self._fail(e) from None

    def put(self, rel: str, data: bytes | Path, *, create: bool = False) -> None:
        """Upload `data` (a file is streamed, multipart when large); `create` fails with
        kind "exists" if the object is already there."""
        self.counters.add("put")
        size = len(data) if isinstance(data, bytes) else data.stat().st_size
        try:
            obstore.put(self.remote.store, self.remote.key(rel), data,
                        mode="create" if create else "overwrite")
        except Exception as e:
            raise self._fail(e) from None
        self.counters.add("bytes_uploaded", size)

    def delete(self, rels: list[str]) -> None:
        self.counters.add("delete", len(rels))
        try:
            obstore.delete(self.remote.store, [self.remote.key(r) for r in rels])
        except Exception as e:
            raise self._fail(e) from None
