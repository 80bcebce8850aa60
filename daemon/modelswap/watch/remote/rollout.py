"""The fleet rollout file of a remote base path, mirrored beside the cached versions.

`<base_path>/_modelswap_rollout.json` in the store is copied verbatim to
`<cache_dir>/<model>/_modelswap_rollout.json` (a temporary file renamed over it) whenever
the listing shows it changed, and removed when it leaves the store: the gate then reads it
like a local base path's, validates it, and the coordinator follows it. The copy costs one
GET per change (the listing that finds versions also names it), nothing per poll.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from modelswap.fleet.rollout import MAX_SIZE, ROLLOUT_NAME
from modelswap.logger import get_logger

from .cache import fsync_dir
from .client import Client, ObjectInfo

__all__ = ["RolloutCopy"]

log = get_logger("modelswap.remote")


class RolloutCopy:
    """Keeps `folder/_modelswap_rollout.json` equal to the store's; `on_change(path)`
    after the local copy changed (written or removed)."""

    def __init__(self, model: str, folder: Path,
                 on_change: Callable[[Path], object] | None = None) -> None:
        self.model, self.path = model, folder / ROLLOUT_NAME
        self._on_change = on_change
        self._copied: tuple[str, int, str] | None = None  # identity of the object copied
        self._failing = False  # the local copy could not be written (logged once)

    def sync(self, client: Client, found: ObjectInfo | None) -> None:
        """Follow the listing's rollout object (None: the store has none). A failed GET
        raises `RemoteError` (the caller's store-failure handling applies); a local write
        that fails (disk full) is logged once and tried again on the next poll, while the
        versions go on being mirrored and the coordinator keeps the rollout it has."""
        try:
            self._sync(client, found)
        except OSError as exc:
            if not self._failing:
                log.warning("remote_rollout_copy_failed", model=self.model,
                            path=str(self.path), error=str(exc))
            self._failing = True
        else:
            self._failing = False

    def _sync(self, client: Client, found: ObjectInfo | None) -> None:
        if found is None:
            if self._copied is None and not self.path.exists():
                return
            self.path.unlink(missing_ok=True)
            self._copied = None
            log.info("remote_rollout_removed", model=self.model)
            self._changed()
            return
        if found.identity() == self._copied and self.path.exists():
            return
        data = bytearray()
        for piece in client.stream(ROLLOUT_NAME):  # a larger file fails validation anyway
            data += piece
            if len(data) > MAX_SIZE:
                break
        self._write(bytes(data))
        self._copied = found.identity()
        log.info("remote_rollout_copied", model=self.model, bytes=len(data))
        self._changed()

    def _write(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # `.incoming-…`: a leftover of a crash is deleted by the cache's `prepare()`
        tmp = self.path.with_name(f".incoming-rollout-{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        fsync_dir(self.path.parent)

    def _changed(self) -> None:
        if self._on_change is not None:
            try:
                self._on_change(self.path)
            except Exception:
                log.exception("remote_rollout_hint_failed", model=self.model)
