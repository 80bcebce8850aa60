"""What a remote base path holds: version prefixes (one delimiter listing), then a version's
objects, with an identity that changes whenever any of them is rewritten."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from modelswap.gate.listing import ROLLOUT_NAME

from .client import Client, ObjectInfo
from .manifest import MANIFEST_NAME

__all__ = ["Listed", "VersionObjects", "list_version", "list_versions", "parse_version"]


def parse_version(name: str) -> int | None:
    """The version number of a folder name (`00000123` is 123), or None for other names."""
    if name.isascii() and name.isdigit() and int(name) > 0:
        return int(name)
    return None


@dataclass(frozen=True)
class Listed:
    """One listing of the base path: version → folder name, numbers named twice, and the
    fleet rollout object beside the versions (`_modelswap_rollout.json`), if any."""

    versions: dict[int, str]
    duplicates: dict[int, list[str]]
    rollout: ObjectInfo | None = None


def list_versions(client: Client) -> Listed:
    """One delimiter listing; stray objects and non-numeric prefixes are ignored."""
    names, objects = client.list_dir("")
    by_number: dict[int, list[str]] = {}
    for name in names:
        if (n := parse_version(name)) is not None:
            by_number.setdefault(n, []).append(name)
    return Listed({n: ns[0] for n, ns in by_number.items() if len(ns) == 1},
                  {n: sorted(ns) for n, ns in by_number.items() if len(ns) > 1},
                  next((o for o in objects if o.path == ROLLOUT_NAME), None))


@dataclass(frozen=True)
class VersionObjects:
    """The objects of one version folder, paths relative to it."""

    version: int
    name: str
    objects: dict[str, ObjectInfo]

    @property
    def manifest(self) -> ObjectInfo | None:
        return self.objects.get(MANIFEST_NAME)

    def signature(self) -> str:
        """Changes when the manifest changes or, without one, when any object does."""
        items = [self.manifest] if self.manifest else list(self.objects.values())
        h = hashlib.sha256()
        for path, size, tag in sorted(i.identity() for i in items if i is not None):
            h.update(f"{path}\0{size}\0{tag}\n".encode())
        return h.hexdigest()[:16]


def list_version(client: Client, name: str, version: int) -> VersionObjects:
    """Every object under `name/` (one request per 1,000 objects)."""
    objects = {}
    for info in client.list_all(name):
        rel = info.path.removeprefix(f"{name}/")
        if rel and not rel.endswith("/"):  # "folder" placeholder objects some tools write
            objects[rel] = ObjectInfo(rel, info.size, info.etag, info.last_modified)
    return VersionObjects(version, name, objects)
