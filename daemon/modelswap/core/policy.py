"""Version policy: which of the ready versions should be served."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from modelswap.config import VersionPolicy


def aspired_versions(
    candidates: Iterable[int], policy: VersionPolicy, labels: Mapping[str, int] | None = None
) -> frozenset[int]:
    """The versions to serve: the policy's pick among `candidates`, plus labelled candidates."""
    pool = set(candidates)
    if policy.kind == "all":
        chosen = set(pool)
    elif policy.kind == "specific":
        chosen = pool & set(policy.specific)
    else:
        chosen = set(sorted(pool, reverse=True)[: policy.latest])
    if labels:
        chosen |= pool & set(labels.values())
    return frozenset(chosen)


def wanted_on_disk(on_disk: Iterable[int], policy: VersionPolicy,
                   labels: Mapping[str, int] | None = None) -> list[int]:
    """Versions worth examining, newest first: the policy's reach plus labelled versions.

    For `latest N` every version is a potential candidate (older ones become
    candidates when newer ones fail), so the caller walks this list newest
    first and stops once it has enough ready ones.
    """
    versions = sorted(set(on_disk), reverse=True)
    if policy.kind == "specific":
        keep = set(policy.specific) | set((labels or {}).values())
        return [v for v in versions if v in keep]
    return versions
