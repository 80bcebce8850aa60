"""Reading YAML into a validated `Config`; every error names file, line and key path."""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from modelswap.config.positions import KeyPath, line_for, load_yaml, render
from modelswap.config.remote import RemoteConfig
from modelswap.config.schema import (
    Config,
    HooksConfig,
    HttpConfig,
    LoaderConfig,
    LoadOptions,
    LoggingConfig,
    ModelConfig,
    ServiceConfig,
    TrustConfig,
    WatchConfig,
    _duplicate_name,
)
from modelswap.errors import ConfigError

_SECTIONS: dict[tuple[str, ...], type[BaseModel]] = {
    (): Config, ("models",): ModelConfig, ("watch",): WatchConfig, ("loader",): LoaderConfig,
    ("service",): ServiceConfig, ("logging",): LoggingConfig, ("http",): HttpConfig,
    ("hooks",): HooksConfig, ("trust",): TrustConfig, ("models", "trust"): TrustConfig,
    ("models", "load_options"): LoadOptions, ("remote",): RemoteConfig,
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
    def error(message: str, loc: KeyPath) -> ConfigError:
        return ConfigError(message, file=source, line=line_for(loc, lines),
                           key=render(loc) or None)

    if data is None:
        raise ConfigError("the config is empty; expected a mapping with a 'models' list",
                          file=source, line=1 if lines else None)
    if not isinstance(data, dict):
        raise error(f"expected a mapping at the top level, got {type(data).__name__}", ())
    found: list[ConfigError] = []
    dup = _duplicate_name(data.get("models"))
    if dup is not None:
        found.append(error(f"duplicate model name {dup[1]!r}", ("models", dup[0], "name")))
    try:
        config = Config.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            raw = tuple(err["loc"])
            if dup is not None and not raw and "duplicate model name" in str(err["msg"]):
                continue  # reported above, with its line
            # a mapping key is a name, never a sequence index, even when YAML made it an int
            keyed = err["type"] == "invalid_key" or raw[-1:] == ("[key]",)
            loc = tuple(p for p in raw if p != "[key]")
            if loc[:1] == ("models",) and loc[2:3] == ("source_url",):
                loc = (*loc[:2], "base_path", *loc[3:])  # the user wrote the URL there
            if keyed and loc:
                loc = (*loc[:-1], str(loc[-1]))
            found.append(error(_describe(err), loc))
    except RecursionError:
        raise ConfigError("the config is nested too deeply", file=source) from None
    if found:
        raise ConfigError.of(found) from None
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


def config_warnings(config: Config) -> list[ConfigError]:
    """What is valid but likely a mistake: a base path that does not exist (yet), an
    old key name. Each names file, line and key like an error."""
    found: list[ConfigError] = []

    def warn(message: str, *key: str | int) -> None:
        found.append(ConfigError(message, file=config.source, line=config.line_of(*key),
                                 key=render(key)))

    for i, model in enumerate(config.models):
        if model.is_remote:
            continue  # its cache folder is created at start
        if not model.base_path.exists():
            warn(f"{model.base_path} does not exist (yet): {model.name} serves nothing "
                 "until it does", "models", i, "base_path")
        elif not model.base_path.is_dir():
            warn(f"{model.base_path} is not a folder", "models", i, "base_path")
    if config.service.ready_when is not None:
        warn(f"ready_when is deprecated: use require: {config.service.require}",
             "service", "ready_when")
    return sorted(found, key=lambda e: e.line or 0)
