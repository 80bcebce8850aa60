"""The manifest: written last by `publish`, its existence commits a remote version.

`<base>/<N>/_modelswap_manifest.json` lists every file of the version (relative path, size,
crc32c as 8 hex digits of the big-endian value, sha256) and the MetaGraph tag sets. The
mirror verifies each downloaded file's size and crc32c against it and keeps a copy in the
local version folder, so a cache entry says what it holds. A manifest from the store is
untrusted input: paths are checked (relative, no `..`) before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import google_crc32c

from . import savedmodel

__all__ = ["CLAIM_NAME", "MANIFEST_NAME", "FileEntry", "Hasher", "Manifest", "ManifestError",
           "build_manifest", "safe_relpath", "verify_dir"]

MANIFEST_NAME = "_modelswap_manifest.json"
CLAIM_NAME = "_modelswap_claim"  # a publish in progress: wait for its manifest
FORMAT = "modelswap-manifest/1"
_CHUNK = 1 << 20


class ManifestError(ValueError):
    """A manifest that does not parse, or files that do not match it."""


def safe_relpath(path: str) -> str:
    """`path` if it is a clean relative POSIX path inside the version folder, else ValueError."""
    p = PurePosixPath(path)
    if (not path or p.is_absolute() or "\\" in path or "\0" in path
            or any(part in ("", ".", "..") for part in path.split("/"))):
        raise ValueError(f"unsafe path {path!r}")
    return path


class Hasher:
    """crc32c and (unless told not to) sha256 of a byte stream, fed chunk by chunk."""

    def __init__(self, *, sha256: bool = True) -> None:
        self.size = 0
        self._crc = google_crc32c.Checksum()  # type: ignore[no-untyped-call]
        self._sha = hashlib.sha256() if sha256 else None

    def update(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self._crc.update(chunk)  # type: ignore[no-untyped-call]
        if self._sha is not None:
            self._sha.update(chunk)

    def crc32c(self) -> str:
        return bytes(self._crc.digest()).hex()  # type: ignore[no-untyped-call]

    def sha256(self) -> str | None:
        return self._sha.hexdigest() if self._sha is not None else None

    @classmethod
    def of_file(cls, path: Path) -> Hasher:
        h = cls()
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
        return h


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    crc32c: str
    sha256: str

    def mismatch(self, h: Hasher) -> str | None:
        """None if `h` hashed exactly this file's content (size, crc32c, and sha256 if `h`
        computed it), else what differs."""
        if h.size != self.size:
            return f"{self.path}: {h.size} bytes, manifest says {self.size}"
        if h.crc32c() != self.crc32c:
            return f"{self.path}: crc32c {h.crc32c()}, manifest says {self.crc32c}"
        if h.sha256() not in (None, self.sha256):
            return f"{self.path}: sha256 differs from the manifest"
        return None


@dataclass(frozen=True)
class Manifest:
    version: int
    tags: tuple[tuple[str, ...], ...]
    files: tuple[FileEntry, ...]

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def to_json(self) -> bytes:
        doc = {"format": FORMAT, "version": self.version,
               "tags": [list(t) for t in self.tags], "files": [asdict(f) for f in self.files]}
        return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        """Parse and validate; `ManifestError` says what is wrong."""
        try:
            doc = json.loads(data)
            if doc.get("format") != FORMAT:
                raise ValueError(f"format {doc.get('format')!r}, expected {FORMAT!r}")
            files = tuple(_entry(f) for f in doc["files"])
            tags = tuple(tuple(str(t) for t in ts) for ts in doc["tags"])
            version = doc["version"]
            if not isinstance(version, int) or isinstance(version, bool) or version < 0:
                raise ValueError(f"bad version {version!r}")
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ManifestError(f"{MANIFEST_NAME} is not valid: {e}") from None
        paths = [f.path for f in files]
        if len(set(paths)) != len(paths) or MANIFEST_NAME in paths:
            raise ManifestError(f"{MANIFEST_NAME} lists a path twice, or itself")
        if not any(p in savedmodel.PB_NAMES for p in paths):
            raise ManifestError(f"{MANIFEST_NAME} lists no saved_model.pb")
        return cls(version, tags, files)


def _entry(doc: dict[str, Any]) -> FileEntry:
    size, crc, sha = doc["size"], doc["crc32c"], doc["sha256"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValueError(f"bad size {size!r}")
    if len(crc) != 8 or len(sha) != 64:
        raise ValueError("bad checksum length")
    bytes.fromhex(crc + sha)  # ValueError if not hex
    return FileEntry(safe_relpath(doc["path"]), size, crc.lower(), sha.lower())


def _files(version_dir: Path) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(version_dir):
        dirnames.sort()
        for name in sorted(filenames):
            rel = (Path(dirpath) / name).relative_to(version_dir).as_posix()
            if rel != MANIFEST_NAME:
                found.append(safe_relpath(rel))
    return found


def build_manifest(version_dir: Path, version: int) -> Manifest:
    """Hash every file under `version_dir`; read the tag sets from its `saved_model.pb`."""
    version_dir = Path(version_dir)
    files = _files(version_dir)
    pb = next((n for n in savedmodel.PB_NAMES if n in files), None)
    if pb is None:
        raise ManifestError(f"{version_dir}: no saved_model.pb")
    model = savedmodel.parse((version_dir / pb).read_bytes(), text=pb.endswith("txt"))
    entries = []
    for rel in files:
        h = Hasher.of_file(version_dir / rel)
        entries.append(FileEntry(rel, h.size, h.crc32c(), h.sha256() or ""))
    tags = tuple(tuple(t) for t in savedmodel.tag_sets(model))
    return Manifest(version, tags, tuple(entries))


def verify_dir(version_dir: Path, manifest: Manifest) -> str | None:
    """None if every file of `manifest` is in `version_dir` with its checksums, else why not."""
    for entry in manifest.files:
        path = Path(version_dir) / entry.path
        if not path.is_file():
            return f"{entry.path} missing"
        if (why := entry.mismatch(Hasher.of_file(path))) is not None:
            return why
    return None
