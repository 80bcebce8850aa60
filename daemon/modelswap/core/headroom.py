"""Memory headroom: will a new version fit beside the served one?"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from modelswap.config import LoaderConfig
from modelswap.logger import get_logger

log = get_logger("modelswap")


def estimate(version_dir: Path, factor: float) -> int:
    """Bytes a loaded version is expected to take: its files (variables/ + graph) x factor."""
    total = 0
    for name in ("saved_model.pb", "saved_model.pbtxt"):
        with contextlib.suppress(OSError):
            total += (version_dir / name).stat().st_size
    try:
        with os.scandir(version_dir / "variables") as entries:
            total += sum(e.stat().st_size for e in entries if e.is_file())
    except OSError:
        pass
    return int(total * factor)


def _rss() -> int:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _mem_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _cgroup_headroom() -> int | None:
    """memory.max - memory.current of this process's cgroup (v2), or v1's limit - usage."""
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        hierarchy, controllers, path = line.split(":", 2)
        if hierarchy == "0" and controllers == "":
            base = Path("/sys/fs/cgroup") / path.lstrip("/")
            limit_file, usage_file = base / "memory.max", base / "memory.current"
        elif "memory" in controllers.split(","):
            base = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
            limit_file, usage_file = base / "memory.limit_in_bytes", base / "memory.usage_in_bytes"
        else:
            continue
        try:
            limit = limit_file.read_text().strip()
            usage = int(usage_file.read_text().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 2**60:
            return int(limit) - usage
    return None


def headroom(limit: int | None = None) -> int | None:
    """Bytes this process may still use: `limit` - RSS when a limit is configured, else the
    smaller of the cgroup's headroom and MemAvailable (None when nothing is known)."""
    if limit is not None:
        return limit - _rss()
    known = [v for v in (_cgroup_headroom(), _mem_available()) if v is not None]
    return min(known) if known else None


def shortfall(paths: list[Path], factor: float, limit: int | None) -> tuple[int, int] | None:
    """(estimate, headroom) in bytes when loading `paths` would not fit, else None."""
    room = headroom(limit)
    need = sum(estimate(path, factor) for path in paths)
    return (need, room) if room is not None and need > room else None


def short_of_memory(model: str, versions: dict[int, Path], loader: LoaderConfig) -> bool:
    """True (and logged) when loading `versions` beside the served ones would not fit."""
    if loader.memory_policy == "ignore":
        return False
    short = shortfall(list(versions.values()), loader.memory_factor, loader.memory_limit)
    if short is not None:
        log.warning("memory_headroom_short", model=model, versions=sorted(versions),
                    estimate_bytes=short[0], headroom_bytes=short[1],
                    policy=loader.memory_policy)
    return short is not None
