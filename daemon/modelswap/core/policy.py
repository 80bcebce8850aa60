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

