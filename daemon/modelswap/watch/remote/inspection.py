"""`modelswap inspect URL`: each remote version's verdict, as the mirror would judge it.

One listing of the base path, one of each version, then the manifest or the content proof
(`saved_model.pb` and `variables/variables.index` only, never a shard). Nothing is
downloaded and nothing is written.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from .client import Client
from .judge import judge
from .listing import list_version, list_versions
from .manifest import MANIFEST_NAME
from .store import open_remote

__all__ = ["inspect_url"]


def inspect_url(url: str, tags: Collection[str] = ("serve",)) -> dict[str, Any]:
    """{"path": redacted URL, "versions": [...]} in `modelswap inspect`'s report shape.
    Raises `RemoteError` when the store cannot be listed."""
    client = Client(open_remote(url))
    listed = list_versions(client)
    versions: list[dict[str, Any]] = []
    wanted = sorted(tags)
    for n, name in sorted(listed.versions.items(), reverse=True):
        objs = list_version(client, name, n)
        verdict, plan = judge(client, objs, wanted)
        manifest = plan.manifest if plan is not None else None
        versions.append({
            "version": n, "path": f"{client.remote.url.rstrip('/')}/{name}",
            "complete": verdict.state == "complete",
            "reason": verdict.reason,
            "error_type": None if verdict.state == "complete"
            else "IncompleteModel" if verdict.state == "incomplete" else "RemoteError",
            "checked_tags": wanted,
            "check": None if verdict.state == "complete"
            else "manifest" if MANIFEST_NAME in objs.objects else "content proof",
            "proof": "manifest" if MANIFEST_NAME in objs.objects else "content",
            "files": len(plan.files) if plan is not None else len(objs.objects),
            "bytes": plan.total_bytes if plan is not None
            else sum(o.size for o in objs.objects.values()),
            "meta_graphs": [{"tags": list(t), "signatures": {}} for t in manifest.tags]
            if manifest is not None else [],
            "fingerprint": None,
        })
    warnings = [f"version {n} is named twice: {', '.join(names)} (ignored)"
                for n, names in sorted(listed.duplicates.items())]
    return {"path": client.remote.url, "warnings": warnings, "versions": versions,
            "requests": {k: v for k, v in client.counters.snapshot().items()
                         if k in ("list", "get", "head")}}
