"""Wall-clock timestamps as they appear in fleet files: ISO 8601, UTC, second precision."""

from __future__ import annotations

from datetime import datetime, timezone


def iso(t: float) -> str:
    """`t` (epoch seconds) as `2026-11-27T17:12:11.250Z`."""
    stamp = datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def parse_iso(text: str) -> float | None:
    """Epoch seconds of an ISO 8601 timestamp with a time zone; None if it is not one."""
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp.timestamp() if stamp.tzinfo is not None else None


def age(seconds: float) -> str:
    """A short age: `12s`, `4m`, `3h`, `2d`."""
    s = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"
