"""Small objects beside the versions of one base path: a local folder or a remote URL.

Local writes are atomic (a temporary file in the same folder, fsynced, renamed over the
target); remote writes are one single-object put, which object stores apply atomically.
Every failure is a `RepositoryError` with a one-line, secret-free message.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from modelswap.gate.listing import parse_version

if TYPE_CHECKING:
    from modelswap.watch.remote.client import Client

__all__ = ["MAX_OBJECT", "Repository", "RepositoryError"]

MAX_OBJECT = 1 << 20  # fleet files are a few hundred bytes; anything larger is not ours


class RepositoryError(Exception):
    """A base path that cannot be read or written; `str()` is safe to show."""


def _is_url(base_path: str) -> bool:
    scheme, sep, _ = base_path.partition("://")
    return bool(sep) and scheme.isascii() and scheme.replace("+", "").isalnum()


class Repository:
    """One base path. `rel` paths are relative to it and use `/` (`_fleet/r0.json`)."""

    def __init__(self, base_path: str | os.PathLike[str]) -> None:
        text = os.fspath(base_path)
        self.remote = _is_url(text)
        self._client: Client | None = None
        if self.remote:
            try:
                from modelswap.watch.remote import RemoteError, open_remote, redact
                from modelswap.watch.remote.client import Client
            except ImportError as exc:
                raise RepositoryError(f"{text}: remote base paths need the [remote] extra "
                                      f"(pip install 'modelswap[remote]'): {exc}") from None
            self.display = redact(text)
            try:
                self._client = Client(open_remote(text))
            except RemoteError as exc:
                raise RepositoryError(str(exc)) from None
            self.path: Path | None = None
        else:
            self.path = Path(text).expanduser()
            self.display = str(self.path)

    def where(self, rel: str) -> str:
        """`rel` as a user would name it (`s3://bucket/m/_fleet/r0.json`)."""
        return f"{self.display.rstrip('/')}/{rel}"

    def read(self, rel: str) -> bytes | None:
        """The object's bytes, or None if there is none. Larger than `MAX_OBJECT`: error."""
        if self._client is not None:
            from modelswap.watch.remote import RemoteError

            try:
                data = self._client.get_bytes(rel)
            except RemoteError as exc:
                if exc.kind == "not_found":
                    return None
                raise RepositoryError(f"{self.where(rel)}: {exc}") from None
        else:
            assert self.path is not None
            try:
                with open(self.path / rel, "rb") as f:
                    data = f.read(MAX_OBJECT + 1)
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise RepositoryError(f"{self.where(rel)}: {exc.strerror or exc}") from None
        if len(data) > MAX_OBJECT:
            raise RepositoryError(f"{self.where(rel)}: larger than {MAX_OBJECT} bytes")
        return data

    def write(self, rel: str, data: bytes) -> None:
        """Replace the object whole: readers see the old bytes or the new, never a mix."""
        if self._client is not None:
            from modelswap.watch.remote import RemoteError

            try:
                self._client.put(rel, data)
            except RemoteError as exc:
                raise RepositoryError(f"{self.where(rel)}: {exc}") from None
            return
        assert self.path is not None
        target = self.path / rel
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
        try:
            if target.parent != self.path:
                target.parent.mkdir(exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
            dir_fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise RepositoryError(f"{self.where(rel)}: {exc.strerror or exc}") from None

    def delete(self, rel: str) -> None:
        """Remove the object if it is there."""
        if self._client is not None:
            from modelswap.watch.remote import RemoteError

            try:
                self._client.delete([rel])
            except RemoteError as exc:
                if exc.kind != "not_found":
                    raise RepositoryError(f"{self.where(rel)}: {exc}") from None
            return
        assert self.path is not None
        try:
            (self.path / rel).unlink(missing_ok=True)
        except OSError as exc:
            raise RepositoryError(f"{self.where(rel)}: {exc.strerror or exc}") from None

    def names(self, folder: str) -> list[str]:
        """The object names directly in `folder` (not sub-folders), sorted; [] if none."""
        if self._client is not None:
            from modelswap.watch.remote import RemoteError

            try:
                _, objects = self._client.list_dir(folder)
            except RemoteError as exc:
                if exc.kind == "not_found":
                    return []
                raise RepositoryError(f"{self.where(folder)}: {exc}") from None
            return sorted(o.path.rsplit("/", 1)[-1] for o in objects)
        assert self.path is not None
        try:
            with os.scandir(self.path / folder) as entries:
                return sorted(e.name for e in entries if e.is_file(follow_symlinks=False))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise RepositoryError(f"{self.where(folder)}: {exc.strerror or exc}") from None

    def versions(self) -> frozenset[int]:
        """The version numbers there (folders, or prefixes, named by a positive integer)."""
        if self._client is not None:
            from modelswap.watch.remote import RemoteError
            from modelswap.watch.remote.listing import list_versions

            try:
                listed = list_versions(self._client)
            except RemoteError as exc:
                raise RepositoryError(f"{self.display}: {exc}") from None
            return frozenset([*listed.versions, *listed.duplicates])
        assert self.path is not None
        try:
            with os.scandir(self.path) as entries:
                return frozenset(n for e in entries if (n := parse_version(e.name)) is not None
                                 and e.is_dir())
        except OSError as exc:
            raise RepositoryError(f"{self.display}: {exc.strerror or exc}") from None
