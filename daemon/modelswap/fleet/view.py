"""The fleet view: members by models from the status objects, and what is wrong with it.

Pure: `expected_version` and `fleet_problems` judge, `render_fleet` draws the table; the
time is an argument. A member disagrees when it serves another version than the rollout
gives it (or, without a rollout, than the other members) for longer than `grace` seconds;
its heartbeat is stale when older than `stale_after`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from modelswap.fleet.rollout import Rollout, RolloutProblem, serves_canary
from modelswap.fleet.status import MemberStatus, ModelReport
from modelswap.fleet.timefmt import age

__all__ = ["DEFAULT_GRACE", "DEFAULT_STALE", "FleetView", "expected_version", "fleet_problems",
           "render_fleet"]

DEFAULT_GRACE = 300.0  # members may disagree this long after a rollout change or a publish
DEFAULT_STALE = 90.0  # three missed heartbeats


@dataclass(frozen=True)
class FleetView:
    """What `modelswap fleet status` shows: the rollout, the members, unreadable objects."""

    where: str
    rollout: Rollout | RolloutProblem | None
    members: Sequence[MemberStatus]
    unreadable: Sequence[str] = ()


def expected_version(rollout: Rollout, member: str, model: str) -> int:
    """The version `rollout` gives `member` as its default for `model`."""
    if rollout.canary is not None and serves_canary(member, model, rollout.percent):
        return rollout.canary
    return rollout.stable


def _served(m: MemberStatus, model: str) -> int | None:
    report = m.models.get(model)
    return report.served if report else None


def fleet_problems(view: FleetView, now: float, *, grace: float = DEFAULT_GRACE,
                   stale_after: float = DEFAULT_STALE) -> list[str]:
    """One line per problem; none means the fleet is converged and alive."""
    problems = list(view.unreadable)
    if isinstance(view.rollout, RolloutProblem):
        problems.append(f"rollout file ignored: {view.rollout}")
    if not view.members:
        return [*problems, f"{view.where}: no member status objects (_fleet/*.json)"]
    live = []
    for m in view.members:
        if now - m.heartbeat > stale_after:
            problems.append(f"{m.member}: heartbeat {age(now - m.heartbeat)} old "
                            f"(stale after {age(stale_after)})")
        else:
            live.append(m)
    models = sorted({name for m in live for name in m.models})
    rollout = view.rollout if isinstance(view.rollout, Rollout) else None
    for model in models:
        serving = [m for m in live if model in m.models]
        if rollout is not None:
            if now - rollout.updated_at <= grace:
                continue
            for m in serving:
                want, have = expected_version(rollout, m.member, model), _served(m, model)
                if have != want:
                    problems.append(f"{m.member}: serves {model} {_v(have)}, the rollout gives "
                                    f"it v{want} (rollout changed {age(now - rollout.updated_at)}"
                                    " ago)")
            continue
        versions = {_served(m, model) for m in serving}
        if len(versions) <= 1 and None not in versions:
            continue
        since = max(_since(m, m.models[model]) for m in serving)
        if now - since > grace:
            by_version = ", ".join(
                f"{_v(v)} ({' '.join(m.member for m in serving if _served(m, model) == v)})"
                for v in sorted(versions, key=lambda v: -1 if v is None else v))
            problems.append(f"members disagree on {model} for {age(now - since)}: {by_version}")
    return problems


def _since(m: MemberStatus, report: ModelReport) -> float:
    return report.served_since or m.started


def _v(version: int | None) -> str:
    return "no version" if version is None else f"v{version}"


def _state(report: ModelReport) -> tuple[str, str]:
    """(state, note): the served version's state, and what the other versions are doing."""
    notes = [f"v{v.version} {v.state}" + (f" ({v.error_type}: {v.error})" if v.error else "")
             for v in report.versions if v.version != report.served]
    state = "AVAILABLE" if report.served is not None else (
        report.versions[0].state if report.versions else "-")
    return state, "; ".join(notes)


def render_fleet(view: FleetView, now: float) -> str:
    """The rollout line, then one row per member and model."""
    if isinstance(view.rollout, Rollout):
        head = (f"rollout: {view.rollout.describe()} "
                f"(changed {age(now - view.rollout.updated_at)} ago)")
    elif isinstance(view.rollout, RolloutProblem):
        head = f"rollout: ignored ({view.rollout})"
    else:
        head = "rollout: none (members follow their version policy)"
    rows = [("MEMBER", "MODEL", "VERSION", "STATE", "AGE", "HEARTBEAT", "NOTE")]
    rollout = view.rollout if isinstance(view.rollout, Rollout) else None
    for m in view.members:
        for model, report in sorted(m.models.items()):
            state, note = _state(report)
            since = report.served_since
            if rollout is not None:
                want = expected_version(rollout, m.member, model)
                role = "canary" if want == rollout.canary else "stable"
                note = "; ".join(x for x in (
                    role if want == report.served else f"{role}: wants v{want}", note) if x)
            rows.append((m.member, model, "-" if report.served is None else str(report.served),
                         state, "-" if since is None else age(now - since),
                         age(now - m.heartbeat), note))
        if not m.models:
            rows.append((m.member, "-", "-", "-", "-", age(now - m.heartbeat), "no models"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
             for r in rows]
    return "\n".join([head, *(line.rstrip() for line in lines)])
