"""Annotated field types the config sections share: durations, sizes, resolved paths."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

from pydantic import BeforeValidator, ConfigDict, Field, StrictInt, ValidationInfo

from modelswap.config.units import parse_duration, parse_size

__all__ = ["FROZEN", "Duration", "PositiveDuration", "PositiveInt", "ResolvedPath", "Size",
           "resolve_path"]


def resolve_path(value: object, base_dir: object = None) -> Path:
    """An absolute path: `~` expanded, a relative one resolved against `base_dir` (or cwd)."""
    if isinstance(value, Path):
        value = str(value)
    if not isinstance(value, str) or not value or "\0" in value:
        raise ValueError(f"expected a non-empty path string, got {value!r}")
    base = Path(base_dir) if isinstance(base_dir, (str, Path)) and base_dir else Path.cwd()
    return Path(os.path.abspath(base / os.path.expanduser(value)))


def _resolved_path(value: object, info: ValidationInfo) -> Path:
    ctx = info.context if isinstance(info.context, Mapping) else {}
    return resolve_path(value, ctx.get("base_dir"))


PositiveInt = Annotated[StrictInt, Field(ge=1)]
Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]
PositiveDuration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
ResolvedPath = Annotated[Path, BeforeValidator(_resolved_path)]
FROZEN = ConfigDict(extra="forbid", frozen=True)
