"""Memory headroom: how many bytes this process may still use before it is short.

Reclaimable page cache counts as free (the kernel drops it under pressure): in a cgroup v2,
`memory.max - memory.current + inactive_file`; on the host, `MemAvailable`. These are
procfs/sysfs reads, never a model's file system.
"""

from __future__ import annotations

from pathlib import Path

from modelswap.load.job import rss


def _mem_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _stat_field(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key and value.strip().isdigit():
                return int(value)
    except OSError:
        pass
    return 0


def _cgroup_headroom() -> int | None:
    """The limit minus the usage of this process's memory cgroup, page cache that can be
    reclaimed counted as free (v2: inactive_file; v1: total_inactive_file)."""
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
            reclaimable = _stat_field(base / "memory.stat", "inactive_file")
        elif "memory" in controllers.split(","):
            base = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
            limit_file, usage_file = base / "memory.limit_in_bytes", base / "memory.usage_in_bytes"
            reclaimable = _stat_field(base / "memory.stat", "total_inactive_file")
        else:
            continue
        try:
            limit = limit_file.read_text().strip()
            usage = int(usage_file.read_text().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 2**60:
            return int(limit) - usage + reclaimable
    return None


def headroom(limit: int | None = None) -> int | None:
    """Bytes this process may still use: `limit` - RSS when a limit is configured, else the
    smaller of the cgroup's headroom and MemAvailable (None when nothing is known)."""
    if limit is not None:
        return limit - rss()
    known = [v for v in (_cgroup_headroom(), _mem_available()) if v is not None]
    return min(known) if known else None
