"""Command line: `modelswap run | check | inspect | status | publish | demo`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modelswap.errors import ConfigError


def _cmd_check(args: argparse.Namespace) -> int:
    from modelswap.config import config_warnings, load_config
    from modelswap.usercode import load_user_code

    config = load_config(args.config)
    load_user_code(config)
    for warning in config_warnings(config):
        print(f"modelswap: warning: {warning}", file=sys.stderr)
    if any(m.is_remote for m in config.models):
        from modelswap.cli.remote import check_remote

        check_remote(config)  # ConfigError for a store that cannot be built
    print("ok")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from modelswap.config import load_config
    from modelswap.service import logs

    config = load_config(args.config)
    logs.configure_logging(config.logging)
    logs.quiet_tensorflow()
    from modelswap.service.daemon import run

    return run(config)


def _cmd_inspect(args: argparse.Namespace) -> int:
    from modelswap.cli.inspection import inspect_config, inspect_path, render
    from modelswap.config import load_config
    from modelswap.service.logs import quiet_tensorflow

    if args.path is None and args.config is None:
        print("modelswap: inspect needs a PATH, --config FILE, or both", file=sys.stderr)
        return 2
    from modelswap.config.remote import is_url

    if is_url(args.path):
        from modelswap.cli.remote import inspect_remote

        return inspect_remote(args.path, args.tags, args.json)
    config = load_config(args.config) if args.config is not None else None
    quiet_tensorflow()
    path = Path(args.path).expanduser() if args.path is not None else None
    if config is not None:
        try:
            reports = inspect_config(config, path, tags=args.tags)
        except ImportError as exc:
            from modelswap.cli.remote import _extra_missing

            raise _extra_missing(exc, config.source) from None
        if not reports:
            print(f"modelswap: no model in {args.config} has {path} under its base_path",
                  file=sys.stderr)
            return 2
    else:
        assert path is not None
        reports = [inspect_path(path, tags=args.tags)]
    if args.json:
        print(json.dumps(reports[0] if config is None else reports, indent=2))
    else:
        print("\n".join(render(report) for report in reports))
    if any(r.get("error") for r in reports):
        return 2  # a remote store that could not be listed
    return 0 if all(v["complete"] for r in reports for v in r["versions"]) else 1


def _cmd_status(args: argparse.Namespace) -> int:
    from modelswap.cli.status import fetch_models, render_status

    try:
        report = fetch_models(args.url, timeout=args.timeout)
    except OSError as exc:  # urllib's URLError, timeouts, refused connections
        print(f"modelswap: cannot reach the daemon at {args.url}: {exc} "
              "(is it running, with http.listen set?)", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"modelswap: unexpected answer from {args.url}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2) if args.json else render_status(report))
    models = report["models"]
    return 0 if all(m.get("served_version") is not None for m in models) else 1


def _cmd_publish(args: argparse.Namespace) -> int:
    from modelswap.cli.remote import publish_command

    return publish_command(args.local_version_dir, args.url, args.version)


def _cmd_demo(args: argparse.Namespace) -> int:
    from modelswap.cli.demo import run_demo
    from modelswap.service import logs

    logs.configure("warning", "console", sys.stderr)
    logs.quiet_tensorflow()
    return 0 if run_demo() == 0 else 1


def build_parser() -> argparse.ArgumentParser:
    from modelswap import __version__

    parser = argparse.ArgumentParser(prog="modelswap", description=__doc__)
    parser.add_argument("--version", action="version", version=f"modelswap {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the daemon in the foreground")
    run.add_argument("--config", "-c", required=True, help="YAML config file")
    run.set_defaults(func=_cmd_run)
    check = sub.add_parser("check", help="validate a config file")
    check.add_argument("--config", "-c", required=True, help="YAML config file")
    check.set_defaults(func=_cmd_check)
    insp = sub.add_parser("inspect", help="show a SavedModel's tags, signatures, completeness "
                          "and trust, as the daemon's gate would judge it")
    insp.add_argument("path", nargs="?", default=None,
                      help="a version folder, a base path of version folders, or a remote "
                      "base path URL (s3://, gs://, az://, file://)")
    insp.add_argument("--config", "-c", default=None,
                      help="judge with this config's tags, marker and trust (every model, or "
                      "the one holding PATH), and show its load_options")
    insp.add_argument("--tags", default=None,
                      help="comma-separated tag set for the verdict (default: serve, or the "
                      "model's tags)")
    insp.add_argument("--json", action="store_true", help="print JSON")
    insp.set_defaults(func=_cmd_inspect)
    status = sub.add_parser("status", help="ask a running daemon which versions it serves")
    status.add_argument("--url", default="http://127.0.0.1:8501",
                        help="the daemon's http.listen address (default http://127.0.0.1:8501)")
    status.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
    status.add_argument("--json", action="store_true", help="print the JSON of /v1/models")
    status.set_defaults(func=_cmd_status)
    pub = sub.add_parser("publish", help="upload a version folder to a remote base path, "
                         "its manifest last (the manifest commits the version)")
    pub.add_argument("local_version_dir", help="a SavedModel folder")
    pub.add_argument("url", help="the remote base path, e.g. s3://bucket/models/ranker")
    pub.add_argument("--version", type=int, default=None,
                     help="the version number (default: the next after the highest there)")
    pub.set_defaults(func=_cmd_publish)
    demo = sub.add_parser("demo", help="export a tiny model, serve it, swap in v2 under load")
    demo.set_defaults(func=_cmd_demo)
    from modelswap.fleet.cli import add_fleet_parsers

    add_fleet_parsers(sub)  # rollout, fleet status
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `modelswap` command."""
    args: Any = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        for error in exc.errors:
            print(f"modelswap: config error: {error}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"modelswap: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code

