"""Staggered swaps: each member waits its own offset before loading a new version, so a
fleet never loads the same version all at once (tensorflow/serving#385)."""

from __future__ import annotations

import hashlib
import math

__all__ = ["swap_delay"]


def swap_delay(member_id: str, model: str, version: int, jitter_seconds: float) -> float:
    """Seconds `member_id` waits before loading `model` `version`: in [0, jitter_seconds),
    spread evenly over members, the same on every call (a blake2b hash, not `hash()`)."""
    if not jitter_seconds > 0 or math.isinf(jitter_seconds):
        return 0.0
    digest = hashlib.blake2b(f"{member_id}\0{model}\0{version}".encode(), digest_size=8)
    fraction = (int.from_bytes(digest.digest(), "big") >> 11) / float(1 << 53)  # [0, 1)
    return min(fraction * jitter_seconds, math.nextafter(jitter_seconds, 0.0))
