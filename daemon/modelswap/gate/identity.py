"""What makes two version folders the same model: for reuse and for failure memory."""

from __future__ import annotations

import hashlib
from pathlib import Path

FINGERPRINT = "fingerprint.pb"


def _tree(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []


def _files(version_dir: Path) -> list[Path]:
    files = [version_dir / name for name in ("saved_model.pb", "saved_model.pbtxt")
             if (version_dir / name).is_file()]
    return files + _tree(version_dir / "variables") + _assets(version_dir)


def _assets(version_dir: Path) -> list[Path]:
    """assets/ (read by lookup tables, tokenizers) and assets.extra/ (warmup requests)."""
    return _tree(version_dir / "assets") + _tree(version_dir / "assets.extra")


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


def _hash(version_dir: Path, files: list[Path]) -> str:
    digest = hashlib.blake2b(digest_size=20)
    for path in files:
        digest.update(f"{path.relative_to(version_dir)}\0".encode())
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def files_hash(version_dir: Path) -> str:
    """A hash of the model's files (saved_model.pb, variables/, assets/, assets.extra/):
    exact, reads them all."""
    return f"hash:{_hash(version_dir, _files(version_dir))}"


def content_identity(version_dir: Path) -> str:
    """Equal for identical models: TensorFlow's fingerprint (which covers saved_model.pb and
    the variables, not the assets) plus a hash of the assets, else `files_hash`."""
    fingerprint = _fingerprint(version_dir)
    if fingerprint is None:
        return files_hash(version_dir)
    assets = _assets(version_dir)
    return f"{fingerprint}:{_hash(version_dir, assets)}" if assets else fingerprint
