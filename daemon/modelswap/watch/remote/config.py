"""`remote:` settings: where the mirror cache lives and how often remote stores are listed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

__all__ = ["RemoteConfig", "default_cache_dir"]


def default_cache_dir() -> Path:
    """systemd's `$CACHE_DIRECTORY` (first entry) when set, else `~/.cache/modelswap`."""
    env = os.environ.get("CACHE_DIRECTORY", "")
    first = env.split(":")[0]
    return Path(first) if first else Path.home() / ".cache" / "modelswap"


class RemoteConfig(BaseModel):
    """How remote (object storage) base paths are mirrored to local disk.

    Durations are seconds. A request fails when no byte arrived for `stall_timeout`.
    `queue` is an SQS queue URL receiving the bucket's event notifications: hints to
    re-list now, never the truth.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    cache_dir: Path = Field(default_factory=default_cache_dir)
    max_downloads: Annotated[StrictInt, Field(ge=1)] = 2
    poll_interval: Annotated[float, Field(gt=0)] = 30.0
    poll_jitter: Annotated[float, Field(ge=0, lt=1)] = 0.2
    stall_timeout: Annotated[float, Field(gt=0)] = 30.0
    queue: StrictStr | None = None
    swap_jitter: Annotated[float, Field(ge=0)] = 0.0
