"""Durations ("200ms", "2s", "5m") and sizes ("512MB", "2GiB") in the config."""

from __future__ import annotations

import math
import re

_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_MAX_DURATION = 1e9  # ~31 years; larger values overflow threading timeouts


def parse_duration(value: object) -> float:
    """Seconds from a number (>= 0) or a string like "200ms", "2s", "1.5 s", "5m", "1h"."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected a duration like 2s, 200ms, 5m or a number of seconds, "
                         f"got {type(value).__name__}")
    if isinstance(value, str):
        match = _DURATION_RE.fullmatch(value.strip())
        if value.strip().startswith("-"):
            raise ValueError(f"duration must be >= 0, got {value!r}")
        if match is None:
            raise ValueError(f"invalid duration {value!r}: expected e.g. 2s, 200ms, 1.5s, 5m, 1h")
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        try:
            seconds = float(value)
        except OverflowError:
            seconds = math.inf
    if math.isnan(seconds) or seconds < 0:
        raise ValueError(f"duration must be >= 0, got {value!r}")
    if seconds > _MAX_DURATION:
        raise ValueError(f"duration is too large: {value!r}")
    return seconds


_SIZE_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6,
               "g": 10**9, "gb": 10**9, "t": 10**12, "tb": 10**12, "kib": 2**10,
               "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(value: object) -> int:
    """Bytes from an integer or a string like "512MB", "2GiB", "1.5 GB"."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError("expected a size like 512MB, 2GiB or a number of bytes")
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", value)
        if match is None or match.group(2).lower() not in _SIZE_UNITS:
            raise ValueError(f"expected a size like 512MB, 2GiB or a number of bytes, "
                             f"got {value!r}")
        number = float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]
    else:
        number = float(value)
    if not 0 < number < 2**62:
        raise ValueError(f"a size must be positive, got {value!r}")
    return int(number)
