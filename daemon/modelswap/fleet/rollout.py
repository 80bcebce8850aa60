"""The rollout file beside the versions, and which versions one member serves under it.

`<base_path>/_modelswap_rollout.json`::

    {"format": 1, "stable": 7, "canary": 8, "percent": 34,
     "updated_at": "2026-11-27T17:12:11.000Z"}

Every member reads the same file: a member serves the canary version as its default (and
keeps the stable one loaded) when `serves_canary(member_id, model, percent)`, else the
stable version. A file that does not validate is ignored with a `RolloutProblem`: nothing
changes. Parsing and the member's choice are pure; `read_rollout`/`write_rollout` do I/O.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modelswap.fleet.repo import Repository, RepositoryError
from modelswap.fleet.timefmt import iso, parse_iso
from modelswap.gate.listing import ROLLOUT_NAME

__all__ = [
    "ROLLOUT_NAME", "MemberVersions", "Rollout", "RolloutProblem", "member_id",
    "member_versions", "parse_rollout", "read_rollout", "serves_canary", "write_rollout",
]

FORMAT = 1
MAX_SIZE = 64 * 1024
_KEYS = ("format", "stable", "canary", "percent", "updated_at")


@dataclass(frozen=True)
class Rollout:
    """A validated rollout: serve `stable`; `canary` on `percent`% of the members."""

    stable: int
    canary: int | None = None
    percent: int = 0
    updated_at: float = 0.0  # epoch seconds of the last change

    def to_json(self) -> bytes:
        body = {"format": FORMAT, "stable": self.stable, "canary": self.canary,
                "percent": self.percent, "updated_at": iso(self.updated_at)}
        return (json.dumps(body, indent=2) + "\n").encode()

    def describe(self) -> str:
        """`stable 7, canary 8 on 34%` or `stable 7 (no canary)`."""
        if self.canary is None:
            return f"stable {self.stable} (no canary)"
        return f"stable {self.stable}, canary {self.canary} on {self.percent}%"


@dataclass(frozen=True)
class RolloutProblem:
    """A rollout file that cannot be used: ignored, nothing changes."""

    source: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _validate(body: Any) -> Rollout | str:
    if not isinstance(body, dict):
        return f"expected a JSON object, got {type(body).__name__}"
    unknown = sorted(set(body) - set(_KEYS))
    if unknown:
        return f"unknown key(s) {', '.join(map(repr, unknown))} (allowed: {', '.join(_KEYS)})"
    if body.get("format", FORMAT) != FORMAT or isinstance(body.get("format"), bool):
        return f"format: unsupported {body['format']!r} (this modelswap reads format {FORMAT})"
    for key in ("stable", "updated_at"):
        if key not in body:
            return f"{key}: required"
    stable, canary = body["stable"], body.get("canary")
    if not _positive(stable):
        return f"stable: must be a positive integer, got {stable!r}"
    if canary is not None and not _positive(canary):
        return f"canary: must be a positive integer or null, got {canary!r}"
    if canary is not None and canary == stable:
        return f"canary: must differ from stable ({stable})"
    if canary is not None and "percent" not in body:
        return "percent: required with a canary"
    percent = body.get("percent", 0)
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
        return f"percent: must be an integer from 0 to 100, got {percent!r}"
    if canary is None and percent != 0:
        return f"percent: must be 0 without a canary, got {percent}"
    stamp = body["updated_at"]
    when = parse_iso(stamp) if isinstance(stamp, str) else None
    if when is None:
        return f"updated_at: must be an ISO 8601 time with a time zone, got {stamp!r}"
    return Rollout(stable, canary, percent, when)


def parse_rollout(data: bytes, source: str = ROLLOUT_NAME) -> Rollout | RolloutProblem:
    """Validate a rollout file's bytes strictly; never raises."""
    if len(data) > MAX_SIZE:
        return RolloutProblem(source, f"larger than {MAX_SIZE} bytes")
    try:
        body = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        return RolloutProblem(source, "not UTF-8")
    except json.JSONDecodeError as exc:
        return RolloutProblem(source, f"not JSON: {exc.msg} at line {exc.lineno} "
                                      f"column {exc.colno}")
    checked = _validate(body)
    return RolloutProblem(source, checked) if isinstance(checked, str) else checked


def read_rollout(repo: Repository) -> Rollout | RolloutProblem | None:
    """The base path's rollout; None if it has none; a problem if unreadable or invalid."""
    try:
        data = repo.read(ROLLOUT_NAME)
    except RepositoryError as exc:
        return RolloutProblem(repo.where(ROLLOUT_NAME), f"unreadable: {exc}")
    return None if data is None else parse_rollout(data, repo.where(ROLLOUT_NAME))


def write_rollout(repo: Repository, rollout: Rollout | None) -> None:
    """Replace the rollout file whole (None removes it). Raises `RepositoryError`."""
    if rollout is None:
        repo.delete(ROLLOUT_NAME)
    else:
        repo.write(ROLLOUT_NAME, rollout.to_json())


def serves_canary(member_id: str, model: str, percent: int) -> bool:
    """Whether `member_id` serves `model`'s canary at `percent`%: a stable hash (the same on
    every host, every run) of member and model, modulo 100, below `percent`."""
    digest = hashlib.blake2b(f"{member_id}\0{model}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 100 < percent


def _ray_replica_id() -> str | None:
    """The Ray Serve replica's id when called inside one (Ray already imported), else None."""
    if "ray.serve" not in sys.modules:
        return None
    try:
        from ray import serve

        context = serve.get_replica_context()
        replica = context.replica_id
        return f"{replica.deployment_id.name}#{replica.unique_id}"
    except Exception:  # not in a replica, or another Ray version's context
        return None


def member_id(environ: Mapping[str, str] | None = None) -> str:
    """This member's id: `MODELSWAP_MEMBER`, else the Ray Serve replica id, else the host."""
    env = os.environ if environ is None else environ
    return (env.get("MODELSWAP_MEMBER", "").strip() or _ray_replica_id()
            or socket.gethostname())


@dataclass(frozen=True)
class MemberVersions:
    """What one member serves of one model under a rollout.

    `default`: the version `acquire(name)` returns (None: keep what is served now);
    `wanted`: the versions to keep loaded (a subset of those on disk); `labels`: `stable`,
    and `canary` on a canary member; `missing`: rollout versions this member should serve
    that are not on disk (yet); `canary`: this member is in the canary share.
    """

    default: int | None
    wanted: frozenset[int]
    labels: Mapping[str, int] = field(default_factory=dict)
    missing: tuple[int, ...] = ()
    canary: bool = False


def member_versions(rollout: Rollout | None, on_disk: Iterable[int],
                    in_canary: bool) -> MemberVersions | None:
    """The versions a member wants under `rollout`, among `on_disk` (or the planner's ready
    candidates). `in_canary` is `serves_canary(member_id, model, rollout.percent)`.
    None without a rollout: the model's own version policy applies. Pure."""
    if rollout is None:
        return None
    present = set(on_disk)
    canary = rollout.canary is not None and in_canary and rollout.percent > 0
    targets = [rollout.stable] + ([rollout.canary] if canary and rollout.canary else [])
    wanted = frozenset(n for n in targets if n in present)
    labels = {"stable": rollout.stable} if rollout.stable in present else {}
    if canary and rollout.canary in present:
        assert rollout.canary is not None
        labels["canary"] = rollout.canary
    default = targets[-1] if targets[-1] in present else (
        rollout.stable if rollout.stable in present else None)
    return MemberVersions(default, wanted, labels,
                          tuple(n for n in targets if n not in present), canary)
