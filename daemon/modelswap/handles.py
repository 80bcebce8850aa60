"""A consumer's handle on a served version, apart from the loaded version itself.

`Resident` is one loaded version: the model, its refcount and its retirement; only the
coordinator retires or drops it. `Served` is what `acquire()` returns: a small handle with
the model, version, path and signatures, and `release()` (idempotent). Nothing reachable
from a handle can retire or drop a version.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any


class Served:
    """A handle on one published version. Use as `with swap.acquire(name) as served:`.

    Leaving the `with` block (or `release()`) gives it back; releasing twice is harmless.
    A retired version stays fully usable while handles on it are held.
    """

    __slots__ = ("_acquired_at", "_resident", "model", "name", "path", "signatures", "version")

    def __init__(self, resident: Resident, acquired_at: float) -> None:
        self.name = resident.name
        self.version = resident.version
        self.path = resident.path
        self.model = resident.model
        self.signatures = resident.signatures
        self._resident: Resident | None = resident
        self._acquired_at = acquired_at

    def __repr__(self) -> str:
        held = "released" if self._resident is None else "held"
        return f"<Served {self.name} v{self.version} {held}>"

    def __enter__(self) -> Served:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    def release(self) -> None:
        """Give the handle back (a second call does nothing). A released handle no longer
        refers to the model, so keeping it around does not keep the model in memory."""
        resident, self._resident = self._resident, None
        if resident is not None:
            self.model, self.signatures = None, MappingProxyType({})
            resident._release(self)


class Resident:
    """One loaded version, refcounted. `retire()` stops new handles; `on_free` runs once the
    last handle of a retired version is released (then the coordinator drops the model)."""

    __slots__ = ("_held", "_lock", "_on_free", "_retired", "_warned", "model", "name", "path",
                 "signatures", "version")

    def __init__(self, name: str, version: int, path: Path, model: Any,
                 signatures: Mapping[str, Any], on_free: Callable[[Resident], None]) -> None:
        self.name = name
        self.version = version
        self.path = path
        self.model = model
        self.signatures = signatures
        self._lock = threading.Lock()
        self._held: dict[int, float] = {}  # id(handle) → monotonic time it was acquired
        self._warned: set[int] = set()
        self._retired = False
        self._on_free = on_free

    def __repr__(self) -> str:
        return f"<Resident {self.name} v{self.version} refs={len(self._held)}>"

    @property
    def refs(self) -> int:
        """Handles currently held by consumers."""
        return len(self._held)

    def acquire(self) -> Served | None:
        """A new handle, or None once retired."""
        now = time.monotonic()
        with self._lock:
            if self._retired:
                return None
            handle = Served(self, now)
            self._held[id(handle)] = now
            return handle

    def _release(self, handle: Served) -> None:
        with self._lock:
            self._held.pop(id(handle), None)
            self._warned.discard(id(handle))
            free = self._retired and not self._held
        if free:
            self._on_free(self)

    def held_longer_than(self, seconds: float) -> list[float]:
        """Ages of the handles held longer than `seconds` and not reported before."""
        now = time.monotonic()
        with self._lock:
            old = {key: now - at for key, at in self._held.items()
                   if now - at > seconds and key not in self._warned}
            self._warned.update(old)
        return sorted(old.values())

    def retire(self) -> bool:
        """Stop handing out handles; True when none is held (free it now)."""
        with self._lock:
            self._retired = True
            return not self._held

    def drop(self) -> None:
        """Drop the model so Python and TensorFlow can free it."""
        self.model = None
        self.signatures = MappingProxyType({})


@dataclass(frozen=True)
class ModelView:
    """The published versions of one model; replaced whole, never mutated."""

    versions: Mapping[int, Resident]
    labels: Mapping[str, Resident]
    newest: Resident | None
