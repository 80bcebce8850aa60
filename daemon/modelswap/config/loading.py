"""Reading YAML into a validated `Config`; every error names file, line and key path."""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from modelswap.config.positions import KeyPath, line_for, load_yaml, render
from modelswap.config.schema import (
    Config,
    HooksConfig,
    HttpConfig,
    LoaderConfig,
    LoggingConfig,
    ModelConfig,
    ServiceConfig,
    WatchConfig,
    _duplicate_name,
)
from modelswap.errors import ConfigError

_SECTIONS: dict[tuple[str, ...], type[BaseModel]] = {
    (): Config, ("models",): ModelConfig, ("watch",): WatchConfig, ("loader",): LoaderConfig,
    ("service",): ServiceConfig, ("logging",): LoggingConfig, ("http",): HttpConfig,
    ("hooks",): HooksConfig,
}


def _describe(err: Mapping[str, Any]) -> str:
    loc, kind, msg = tuple(err["loc"]), err["type"], str(err["msg"])
    if kind == "extra_forbidden":
        parent = _SECTIONS.get(tuple(p for p in loc[:-1] if isinstance(p, str)))
        allowed = sorted(parent.model_fields) if parent else []
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"did you mean {close[0]!r}?" if close else "allowed: " + ", ".join(allowed)
        return f"unknown key {loc[-1]!r} ({hint})" if allowed else f"unknown key {loc[-1]!r}"
    if kind == "missing":
        return "required key is missing"
    if kind in ("model_type", "dict_type"):
        return f"expected a mapping, got {type(err.get('input')).__name__}"
    msg = msg.removeprefix("Value error, ").replace("a valid tuple", "a list")
    msg = msg.replace("Tuple should", "List should").replace(" after validation", "")
    if kind in ("value_error", "invalid_key"):
        return msg
    got = repr(err.get("input"))
    return f"{msg}, got {got if len(got) <= 60 else got[:57] + '...'}"


def _validate(data: object, source: str, lines: dict[KeyPath, int], base_dir: Path) -> Config:
    def fail(message: str, loc: KeyPath, extra: int = 0) -> ConfigError:
        more = f" (and {extra} more)" if extra else ""
        return ConfigError(message + more, file=source, line=line_for(loc, lines),
                           key=render(loc) or None)

    if data is None:
        raise ConfigError("the config is empty; expected a mapping with a 'models' list",
                          file=source, line=1 if lines else None)
    if not isinstance(data, dict):
        raise fail(f"expected a mapping at the top level, got {type(data).__name__}", ())
    dup = _duplicate_name(data.get("models"))
    if dup is not None:
        raise fail(f"duplicate model name {dup[1]!r}", ("models", dup[0], "name"))
    try:
        config = Config.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        raw = tuple(errors[0]["loc"])
        # a mapping key is a name, never a sequence index, even when YAML made it an int
        keyed = errors[0]["type"] == "invalid_key" or raw[-1:] == ("[key]",)
        loc = tuple(p for p in raw if p != "[key]")
        if keyed and loc:
            loc = (*loc[:-1], str(loc[-1]))
        raise fail(_describe(errors[0]), loc, len(errors) - 1) from None
    except RecursionError:
        raise ConfigError("the config is nested too deeply", file=source) from None
    config._source = source
    config._lines = lines
    return config


def parse_config(text: str, source: str = "<string>", base_dir: Path | None = None) -> Config:
    """Parse and validate YAML text; relative paths resolve against `base_dir` (default cwd)."""
    if not isinstance(text, str):
        raise ConfigError(f"expected YAML text, got {type(text).__name__}", file=source)
    data, lines = load_yaml(text, source)
    return _validate(data, source, lines, Path(os.path.abspath(base_dir or Path.cwd())))


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read, parse and validate a YAML config file; relative paths resolve against its folder."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc.strerror or exc}", file=str(path)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config is not valid UTF-8: {exc.reason}", file=str(path)) from None
    return parse_config(text, source=str(path), base_dir=file.absolute().parent)
