"""Refcounted served versions and the immutable snapshot consumers read."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any


class Served:
    """One published version. Use as `with swap.acquire(name) as served:`.

    `acquire()` takes a reference; leaving the `with` block (or `release()`)
    gives it back. A retired version stays fully usable while referenced and is
    unloaded after its last release.
    """

    __slots__ = ("_lock", "_on_free", "_refs", "_retired", "model", "name", "path",
                 "signatures", "version")

    def __init__(self, name: str, version: int, path: Path, model: Any,
                 signatures: Mapping[str, Any], on_free: Callable[[Served], None]) -> None:
        self.name = name
        self.version = version
        self.path = path
        self.model = model
        self.signatures = signatures
        self._lock = threading.Lock()
        self._refs = 0
        self._retired = False
        self._on_free = on_free

    def __repr__(self) -> str:
        return f"<Served {self.name} v{self.version} refs={self._refs}>"

    def __enter__(self) -> Served:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    @property
    def refs(self) -> int:
        """Handles currently held by consumers."""
        return self._refs

    def _try_ref(self) -> bool:
        with self._lock:
            if self._retired:
                return False
            self._refs += 1
            return True

    def release(self) -> None:
        """Give back the reference `acquire()` took."""
        with self._lock:
            if self._refs <= 0:
                raise RuntimeError(f"{self!r} released more often than acquired")
            self._refs -= 1
            free = self._retired and self._refs == 0
        if free:
            self._on_free(self)

    def retire(self) -> bool:
        """Stop handing out references; True when no one holds one (free it now)."""
        with self._lock:
            self._retired = True
            return self._refs == 0

    def drop(self) -> None:
        """Drop the model so Python and TensorFlow can free it."""
        self.model = None
        self.signatures = MappingProxyType({})


@dataclass(frozen=True)
class ModelView:
    """The published versions of one model; replaced whole, never mutated."""

    versions: Mapping[int, Served]
    labels: Mapping[str, Served]
    newest: Served | None
