"""Which remote versions a member mirrors while a fleet rollout is in force.

The coordinator follows the rollout file in the model's (local) base path; for a remote
base path that file is the mirror's copy of the store's, and the mirror must fetch what the
rollout gives this member (its stable version, and the canary on a canary member) whatever
the version policy would pick. An invalid file changes nothing: the last good rollout stays
in force here as it does in the coordinator.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path

from modelswap.fleet.rollout import (
    MAX_SIZE,
    ROLLOUT_NAME,
    Rollout,
    RolloutProblem,
    member_versions,
    parse_rollout,
    serves_canary,
)

__all__ = ["MirrorRollouts"]


class MirrorRollouts:
    """The rollout's versions for one member, per model, from the copies in base paths."""

    def __init__(self, member: str) -> None:
        self.member = member
        self._good: dict[str, Rollout] = {}  # model → its last valid rollout

    def current(self, model: str, base_path: Path) -> Rollout | None:
        """The rollout in force for `model`: the file's if valid, else the last good one;
        None when there is no file (the version policy applies)."""
        try:
            with open(base_path / ROLLOUT_NAME, "rb") as f:
                data: bytes | None = f.read(MAX_SIZE + 1)
        except FileNotFoundError:
            data = None
        except OSError as exc:
            data = f"unreadable: {exc.strerror}".encode()
        found = parse_rollout(data) if data is not None else None
        if isinstance(found, RolloutProblem):
            return self._good.get(model)
        if found is None:
            self._good.pop(model, None)
        else:
            self._good[model] = found
        return found

    def wanted(self, model: str, base_path: Path, complete: Collection[int],
               labels: Mapping[str, int]) -> frozenset[int] | None:
        """The complete versions to mirror under the rollout (plus labelled ones, which the
        planner keeps too); None without a rollout."""
        rollout = self.current(model, base_path)
        if rollout is None:
            return None
        chosen = member_versions(rollout, complete,
                                 serves_canary(self.member, model, rollout.percent))
        assert chosen is not None
        return chosen.wanted | (frozenset(labels.values()) & frozenset(complete))
