"""Version states, status records and the events subscribers receive."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path


class State(str, enum.Enum):
    """Lifecycle of one model version (TF Serving's states plus WAITING and ERROR)."""

    WAITING = "WAITING"  # on disk, not complete yet
    LOADING = "LOADING"
    AVAILABLE = "AVAILABLE"
    UNLOADING = "UNLOADING"  # retired, waiting for the last handle
    END = "END"
    ERROR = "ERROR"


@dataclass(frozen=True)
class VersionStatus:
    """What `ModelSwap.status()` reports for one version."""

    version: int
    state: State
    path: Path
    error: str | None = None
    error_type: str | None = None
    since: float = 0.0  # wall-clock time of the last state change
    retries: int = 0
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelEvent:
    """A state change of one version, delivered to subscribers and hooks."""

    model: str
    version: int
    state: State
    previous: State | None
    path: Path
    error: str | None = None
    error_type: str | None = None
    durations: tuple[tuple[str, float], ...] = ()
