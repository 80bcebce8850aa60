"""The remote parts of the command line: `publish`, `inspect URL`, `check` of remote models."""

from __future__ import annotations

import json
import sys

from modelswap.config import Config
from modelswap.errors import ConfigError


def _extra_missing(exc: ImportError, source: str | None = None) -> ConfigError:
    return ConfigError(f"remote base paths need modelswap's [remote] extra "
                       f"(pip install 'modelswap[remote]'): {exc}", file=source)


def check_remote(config: Config) -> None:
    """Build each remote model's store (no request is made); print where it is mirrored.
    Raises `ConfigError` naming the base path's line for a store that cannot work."""
    try:
        from modelswap.watch.remote import RemoteError, open_remote, redact
        from modelswap.watch.remote.mirrors import queue_error
    except ImportError as exc:
        raise _extra_missing(exc, config.source) from None
    errors = [e for e in (queue_error(config),) if e is not None]
    for i, model in enumerate(config.models):
        if model.source_url is None:
            continue
        try:
            open_remote(model.source_url)
        except RemoteError as exc:
            if exc.kind == "invalid":
                errors.append(ConfigError(str(exc), file=config.source,
                                          line=config.line_of("models", i, "base_path"),
                                          key=f"models[{i}].base_path"))
                continue
        print(f"{model.name}: {redact(model.source_url)} mirrored into {model.base_path}")
    if errors:
        raise ConfigError.of(errors)


def inspect_remote(url: str, tags: str | None, as_json: bool) -> int:
    """`modelswap inspect URL`: 0 if every version is complete, 1 if not, 2 on errors."""
    from modelswap.cli.inspection import render

    try:
        from modelswap.watch.remote import RemoteError, redact
        from modelswap.watch.remote.inspection import inspect_url
    except ImportError as exc:
        raise _extra_missing(exc) from None
    wanted = [t for t in (tags or "").split(",") if t] or ["serve"]
    try:
        report = inspect_url(url, wanted)
    except RemoteError as exc:
        print(f"modelswap: inspect: {exc.kind}: {redact(str(exc))}", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        print(render(report))
        print(f"  requests: {report['requests']}")
    return 0 if all(v["complete"] for v in report["versions"]) else 1


def publish_command(local_version_dir: str, url: str, version: int | None) -> int:
    """`modelswap publish DIR URL [--version N]`: 0 published, 1 on any error."""
    try:
        from modelswap.watch.remote import cli_publish
    except ImportError as exc:
        raise _extra_missing(exc) from None
    return cli_publish(local_version_dir, url, version)
