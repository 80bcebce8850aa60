"""`modelswap rollout BASE_PATH ...` and `modelswap fleet status BASE_PATH`.

    modelswap rollout BASE_PATH                          # show the rollout
    modelswap rollout BASE_PATH --canary 8 --percent 34  # [--stable 7]
    modelswap rollout BASE_PATH --promote | --abort      # canary → stable | drop the canary
    modelswap rollout BASE_PATH --stable 7               # pin (or roll back) every member
    modelswap rollout BASE_PATH --clear                  # no rollout: version policies apply
    modelswap fleet status BASE_PATH [--grace S] [--stale-after S]

Exit codes: 0 done (status: converged and alive), 1 refused or a fleet problem, 2 the base
path cannot be read or written.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

from modelswap.fleet.repo import Repository, RepositoryError
from modelswap.fleet.rollout import (
    Rollout,
    RolloutProblem,
    read_rollout,
    serves_canary,
    write_rollout,
)
from modelswap.fleet.status import read_fleet
from modelswap.fleet.view import (
    DEFAULT_GRACE,
    DEFAULT_STALE,
    FleetView,
    fleet_problems,
    render_fleet,
)

__all__ = ["add_fleet_parsers", "add_fleet_status_arguments", "add_rollout_arguments",
           "fleet_status_main", "rollout_main"]

Out = Callable[[str], object]


def _err(text: str) -> None:
    print(text, file=sys.stderr)


def _percent(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be from 0 to 100, got {value}")
    return value


def _version(text: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a version number: {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def add_rollout_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("base_path", metavar="BASE_PATH",
                        help="a model's base path: a folder or a remote URL (s3://...)")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--canary", type=_version, metavar="N",
                        help="serve version N on --percent of the members")
    action.add_argument("--promote", action="store_true",
                        help="the canary becomes the stable version everywhere")
    action.add_argument("--abort", action="store_true",
                        help="drop the canary: every member serves the stable version")
    action.add_argument("--clear", action="store_true",
                        help="remove the rollout file: each member's version policy applies")
    parser.add_argument("--percent", type=_percent, metavar="P",
                        help="share of the members serving the canary, 0 to 100")
    parser.add_argument("--stable", type=_version, metavar="S",
                        help="the stable version (alone: pin every member to S)")
    return parser


def add_fleet_status_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("base_path", metavar="BASE_PATH",
                        help="a model's base path: a folder or a remote URL (s3://...)")
    parser.add_argument("--grace", type=_seconds, default=DEFAULT_GRACE, metavar="S",
                        help="seconds members may disagree after a change "
                        f"(default {DEFAULT_GRACE:g})")
    parser.add_argument("--stale-after", type=_seconds, default=DEFAULT_STALE, metavar="S",
                        help=f"a heartbeat older than this is stale (default {DEFAULT_STALE:g})")
    return parser


def add_fleet_parsers(sub: Any) -> None:
    """Register `rollout` and `fleet status` on `sub` (an `add_subparsers()` result)."""
    rollout = sub.add_parser("rollout", help="show or change a model's rollout "
                             "(stable, canary, percent) in its base path")
    add_rollout_arguments(rollout).set_defaults(func=rollout_main)
    fleet = sub.add_parser("fleet", help="the fleet serving a base path")
    fleet_sub = fleet.add_subparsers(dest="fleet_command", required=True)
    status = fleet_sub.add_parser("status", help="members by models: version, state, age; "
                                  "exit 1 if members disagree too long or a heartbeat is stale")
    add_fleet_status_arguments(status).set_defaults(func=fleet_status_main)


class _Refused(Exception):
    """The requested change does not apply (exit 1, nothing written)."""


def _next_rollout(args: argparse.Namespace, current: Rollout | RolloutProblem | None,
                  on_disk: frozenset[int], now: float) -> Rollout | None:
    """The rollout to write, from the arguments and the current one; raises `_Refused`."""
    def present(n: int, what: str) -> int:
        if n not in on_disk:
            have = ", ".join(map(str, sorted(on_disk))) or "none"
            raise _Refused(f"{what} version {n} is not in the base path (versions: {have})")
        return n

    valid = current if isinstance(current, Rollout) else None
    broken = f"the rollout file is invalid ({current}); " if isinstance(
        current, RolloutProblem) else ""
    if args.percent is not None and args.canary is None:
        raise _Refused("--percent goes with --canary N")
    if args.clear:
        return None
    if args.promote or args.abort:
        if valid is None or valid.canary is None:
            raise _Refused(f"{broken}there is no canary to "
                           f"{'promote' if args.promote else 'abort'}")
        if args.promote:
            return Rollout(present(valid.canary, "canary"), None, 0, now)
        return Rollout(valid.stable, None, 0, now)
    if args.canary is None:  # --stable S alone: pin
        return Rollout(present(args.stable, "stable"), None, 0, now)
    if args.percent is None:
        raise _Refused("--canary N needs --percent P")
    canary = present(args.canary, "canary")
    if args.stable is not None:
        stable = args.stable
    elif valid is not None:
        stable = valid.stable
    else:
        below = [n for n in on_disk if n < canary]
        if broken or not below:
            raise _Refused(f"{broken}no stable version to keep: pass --stable S")
        stable = max(below)
    present(stable, "stable")
    if stable == canary:
        raise _Refused(f"the canary must differ from the stable version ({stable})")
    return Rollout(stable, canary, args.percent, now)


def _canary_members(repo: Repository, rollout: Rollout) -> list[str]:
    """Which known members serve the canary, per model (from their status objects)."""
    if rollout.canary is None:
        return []
    try:
        members, _ = read_fleet(repo)
    except RepositoryError:
        return []
    models = sorted({name for m in members for name in m.models})
    lines = []
    for model in models:
        serving = [m.member for m in members if model in m.models]
        chosen = [m for m in serving if serves_canary(m, model, rollout.percent)]
        lines.append(f"  {model}: canary on {len(chosen)} of {len(serving)} known members"
                     + (f" ({', '.join(chosen)})" if chosen else ""))
    return lines


def rollout_main(args: argparse.Namespace, out: Out = print, err: Out = _err) -> int:
    """`modelswap rollout`: show the rollout, or validate and write a new one."""
    try:
        repo = Repository(args.base_path)
        current = read_rollout(repo)
        change = any((args.canary is not None, args.promote, args.abort, args.clear,
                      args.stable is not None, args.percent is not None))
        if not change:
            if current is None:
                out(f"{repo.display}: no rollout (members follow their version policy)")
                return 0
            if isinstance(current, RolloutProblem):
                out(f"rollout file ignored: {current}")
                return 1
            out(f"{repo.display}: {current.describe()}")
            return 0
        new = _next_rollout(args, current, repo.versions(), time.time())
        write_rollout(repo, new)
    except _Refused as exc:
        err(f"modelswap rollout: refused: {exc}")
        return 1
    except RepositoryError as exc:
        err(f"modelswap rollout: error: {exc}")
        return 2
    if new is None:
        out(f"{repo.display}: rollout removed (members follow their version policy)")
    else:
        out(f"{repo.display}: {new.describe()}")
        for line in _canary_members(repo, new):
            out(line)
    return 0


def fleet_status_main(args: argparse.Namespace, out: Out = print, err: Out = _err) -> int:
    """`modelswap fleet status`: the table; exit 1 on disagreement or a stale heartbeat."""
    try:
        repo = Repository(args.base_path)
        rollout = read_rollout(repo)
        members, unreadable = read_fleet(repo)
    except RepositoryError as exc:
        err(f"modelswap fleet status: error: {exc}")
        return 2
    view = FleetView(repo.display, rollout, members, unreadable)
    now = time.time()
    out(render_fleet(view, now))
    problems = fleet_problems(view, now, grace=args.grace, stale_after=args.stale_after)
    for problem in problems:
        out(f"problem: {problem}")
    return 1 if problems else 0
