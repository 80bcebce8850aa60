"""The typed messages the coordinator thread receives (from watchers, pools, handles)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from modelswap.errors import LoadError
from modelswap.gate.scan import ScanResult
from modelswap.handles import Resident
from modelswap.load.job import Loaded, LoadJob


@dataclass(frozen=True)
class Hint:
    """A watcher saw `path` of `model` change (`moved_to`: it was a rename's target)."""

    model: str
    path: Path
    moved_to: bool
    at: float  # monotonic


@dataclass(frozen=True)
class Scanned:
    """A gate job finished."""

    result: ScanResult


@dataclass(frozen=True)
class LoadDone:
    """A load job finished (a loaded version, or why not)."""

    job: LoadJob
    result: Loaded | LoadError


@dataclass(frozen=True)
class Freed:
    """The last handle on a retired version was released."""

    resident: Resident


@dataclass(frozen=True)
class Call:
    """Run `fn` on the coordinator thread."""

    fn: Callable[[], None]


@dataclass(frozen=True)
class Stop:
    """Retire everything and end the thread."""


Message = Hint | Scanned | LoadDone | Freed | Call | Stop


def model_of(msg: Message) -> str | None:
    """The one model `msg` can change; None for a `Call`, which may change any."""
    if isinstance(msg, Hint):
        return msg.model
    if isinstance(msg, Scanned):
        return msg.result.job.model.name
    if isinstance(msg, LoadDone):
        return msg.job.name
    if isinstance(msg, Freed):
        return msg.resident.name
    return None
