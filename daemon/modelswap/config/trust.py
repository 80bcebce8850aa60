"""`trust:`: who may own and write a model's folders (users and groups, resolved now)."""

from __future__ import annotations

import grp
import pwd
from typing import Annotated, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator

from modelswap.config.types import FROZEN

__all__ = ["TrustConfig", "sorted_unique", "trust_input"]

_T = TypeVar("_T", str, int)


def sorted_unique(value: tuple[_T, ...]) -> tuple[_T, ...]:
    return tuple(sorted(set(value)))


def _account_id(value: object, kind: Literal["user", "group"]) -> int:
    """A uid or gid from an id (int or digits) or a name looked up now (pwd/grp)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "":
        raise ValueError(f"expected a {kind} name or id, got {value!r}")
    if isinstance(value, int) or value.isdigit():
        number = int(value)
        if not 0 <= number < 2**32 - 1:
            raise ValueError(f"{kind} id out of range: {number}")
        return number
    try:
        return pwd.getpwnam(value).pw_uid if kind == "user" else grp.getgrnam(value).gr_gid
    except KeyError:
        raise ValueError(f"unknown {kind} {value!r} (not in the {kind} database)") from None


def _owner(value: object) -> str:
    """`name`/uid → "user:<uid>"; `group:name`/`group:gid` → "group:<gid>"."""
    if isinstance(value, str) and value.startswith(("user:", "group:")):
        kind, _, rest = value.partition(":")
        number = _account_id(rest, "group" if kind == "group" else "user")
        return f"{kind}:{number}"
    return f"user:{_account_id(value, 'user')}"


def _group(value: object) -> int:
    if isinstance(value, str) and value.startswith("group:"):
        value = value[len("group:"):]
    return _account_id(value, "group")


class TrustConfig(BaseModel):
    """Who may own and write a model's folders, besides root and the daemon's user.

    `owners`: user names or uids, and `group:<name or gid>` for "owned by that group";
    `group_writable_by`: groups whose members may write (group-writable folders and files
    of those groups pass). Names are resolved when the config is read.
    """

    model_config = FROZEN
    owners: Annotated[tuple[Annotated[str, BeforeValidator(_owner)], ...],
                      AfterValidator(sorted_unique)] = ()
    group_writable_by: Annotated[tuple[Annotated[int, BeforeValidator(_group)], ...],
                                 AfterValidator(sorted_unique)] = ()

    def _ids(self, kind: str) -> frozenset[int]:
        return frozenset(int(o.partition(":")[2]) for o in self.owners
                         if o.startswith(kind + ":"))

    @property
    def uids(self) -> frozenset[int]:
        """Users allowed to own the folders (root and the daemon's user always are)."""
        return self._ids("user")

    @property
    def gids(self) -> frozenset[int]:
        """Groups whose files pass the owner check."""
        return self._ids("group")


def trust_input(value: object) -> object:
    if value is True:
        return {}
    if value is False or value is None:
        return None
    if isinstance(value, (dict, TrustConfig)):
        return value
    raise ValueError(f"expected true, false or a mapping with owners and group_writable_by, "
                     f"got {value!r}")
