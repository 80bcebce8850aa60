"""Failure memory across restarts: a small JSON file in `service.state_dir`, written
atomically, so a version that failed with identical files (same content hash) is not
retried first on every restart."""

from __future__ import annotations

import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from modelswap.logger import get_logger

log = get_logger("modelswap.state")
FILE = "failures.json"


def state_dir(configured: Path | None) -> Path | None:
    """`service.state_dir`, else systemd's $STATE_DIRECTORY (first entry), else None."""
    if configured is not None:
        return configured
    from_systemd = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return Path(from_systemd) if from_systemd else None


class FailureMemory:
    """{model: {version: {identity, error_type, error}}}; a no-op without a directory."""

    def __init__(self, directory: Path | None) -> None:
        self._path = directory / FILE if directory is not None else None
        self._data: dict[str, dict[str, dict[str, str]]] = {}
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="modelswap-state")
        if self._path is not None and self._path.exists():
            try:
                loaded: Any = json.loads(self._path.read_text(encoding="utf-8"))
                if isinstance(loaded, dict):
                    self._data = {m: v for m, v in loaded.items() if isinstance(v, dict)}
            except (OSError, ValueError) as exc:
                log.warning("state_unreadable", path=str(self._path), error=str(exc))

    def close(self) -> None:
        """Wait for pending writes."""
        self._writer.shutdown(wait=True)

    @property
    def enabled(self) -> bool:
        return self._path is not None

    def failed(self, model: str) -> dict[int, str]:
        """{version: identity of the files that failed} for `model`."""
        return {int(v): e["identity"] for v, e in self._data.get(model, {}).items()
                if v.isdigit() and isinstance(e, dict) and isinstance(e.get("identity"), str)}

    def error_of(self, model: str, version: int) -> tuple[str, str]:
        """(error_type, error) remembered for a version."""
        entry = self._data.get(model, {}).get(str(version), {})
        return entry.get("error_type", "LoadError"), entry.get("error", "failed")

    def remember(self, model: str, version: int, identity: str, error_type: str,
                 error: str) -> None:
        entry = {"identity": identity, "error_type": error_type, "error": error}
        if self._data.get(model, {}).get(str(version)) != entry:
            self._data.setdefault(model, {})[str(version)] = entry
            self._save()

    def forget(self, model: str, version: int) -> None:
        if self._data.get(model, {}).pop(str(version), None) is not None:
            self._save()

    def _save(self) -> None:
        """Write the file on a thread of its own: the coordinator does no file I/O."""
        if self._path is not None:
            self._writer.submit(self._write, json.dumps(self._data, indent=1, sort_keys=True))

    def _write(self, text: str) -> None:
        assert self._path is not None
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".failures-", dir=self._path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self._path)
        except OSError as exc:
            log.warning("state_not_saved", path=str(self._path), error=str(exc))
