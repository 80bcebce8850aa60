"""List a base path's version folders: `00012` is version 12."""

from __future__ import annotations

import os
from pathlib import Path

VERSION_MAX = 2**63 - 1
ROLLOUT_NAME = "_modelswap_rollout.json"  # a fleet's rollout file, beside the versions


def parse_version(name: str) -> int | None:
    """`"00012"` → 12; None for names that are not a positive integer in int64 range."""
    if not name.isascii() or not name.isdigit():
        return None
    number = int(name)
    return number if 0 < number <= VERSION_MAX else None


def list_versions(base: Path) -> tuple[dict[int, Path], list[str]]:
    """Version number → folder under `base`, plus warnings (e.g. `001` beside `0001`).

    Raises OSError when `base` cannot be listed (missing, no permission).
    """
    found: dict[int, list[str]] = {}
    with os.scandir(base) as entries:
        for entry in entries:
            number = parse_version(entry.name)
            if number is not None and _is_dir(entry):
                found.setdefault(number, []).append(entry.name)
    versions: dict[int, Path] = {}
    warnings: list[str] = []
    for number, names in found.items():
        names.sort()
        versions[number] = base / names[0]
        if len(names) > 1:
            warnings.append(f"version {number} has several folders {names}; using {names[0]}")
    return versions, warnings


def _is_dir(entry: os.DirEntry[str]) -> bool:
    """False for what is no folder, or cannot be stat'ed (a symlink loop, no permission):
    one bad entry must not make the whole base path unreadable."""
    try:
        return entry.is_dir()
    except OSError:
        return False
