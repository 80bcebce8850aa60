"""What makes two version folders the same model: for reuse and for failure memory."""

from __future__ import annotations

import hashlib
from pathlib import Path

FINGERPRINT = "fingerprint.pb"


def _files(version_dir: Path) -> list[Path]:
    files = [version_dir / name for name in ("saved_model.pb", "saved_model.pbtxt")
             if (version_dir / name).is_file()]
    variables = version_dir / "variables"
    if variables.is_dir():
        files += sorted(p for p in variables.iterdir() if p.is_file())
    return files


def _fingerprint(version_dir: Path) -> str | None:
    """TensorFlow's own fingerprint.pb: the saved_model.pb checksum and the checkpoint hash."""
    path = version_dir / FINGERPRINT
    if not path.is_file():
        return None
    from tensorflow.core.protobuf import fingerprint_pb2

    fp = fingerprint_pb2.FingerprintDef()
    try:
        fp.ParseFromString(path.read_bytes())
    except Exception:
        return None
    if not fp.saved_model_checksum or not fp.checkpoint_hash:
        return None
    return f"fp:{fp.saved_model_checksum}:{fp.checkpoint_hash}"


def files_hash(version_dir: Path) -> str:
    """A hash of the model's files (saved_model.pb and variables/): exact, reads them all."""
    digest = hashlib.blake2b(digest_size=20)
    for path in _files(version_dir):
        digest.update(f"{path.relative_to(version_dir)}\0".encode())
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    return f"hash:{digest.hexdigest()}"


def content_identity(version_dir: Path) -> str:
    """Equal for identical models: TensorFlow's fingerprint when present, else `files_hash`."""
    return _fingerprint(version_dir) or files_hash(version_dir)
