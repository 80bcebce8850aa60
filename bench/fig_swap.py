"""Figure 1 (detect-to-available overhead), figure 4 (first call after a swap) and
figure 8 (load overhead over the floor for the big model)."""

from __future__ import annotations

import random
import time

from .baselines import TFServingPollEmulation, floor
from .common import (
    INFO,
    NA,
    Context,
    Row,
    inputs_for,
    make_config,
    med,
    ms,
    pct,
    settled,
    spread,
    verdict,
    wait_for,
    warmup_supported,
)
from .models import publish, remove_version


def _modelswap_swaps(ctx: Context, mode: str, n: int, jitter: float) -> tuple[list[float],
                                                                                list[float]]:
    """n swaps of the tiny model: (rename -> acquire() returns it) seconds; modelswap loads."""
    from modelswap import ModelEvent, ModelSwap, State

    tiny = ctx.exports["tiny"]
    base = ctx.work / f"fig1-{mode}" / "tiny"
    base.mkdir(parents=True)
    publish(tiny[0], base, 1)
    loads: list[float] = []

    def on_event(event: ModelEvent) -> None:
        if event.state is State.AVAILABLE:
            loads.append(dict(event.durations).get("load", float("nan")))

    rng = random.Random(1)
    totals: list[float] = []
    with ModelSwap(make_config({"tiny": base}, mode=mode)) as swap:
        swap.subscribe(on_event)
        swap.wait_until_available("tiny", timeout=60)
        for version in range(2, n + 2):
            time.sleep(rng.uniform(0, jitter))  # publish at a random phase of any poll
            renamed = publish(tiny[version % len(tiny)], base, version)
            swap.wait_until_available("tiny", version=version, timeout=60)
            with swap.acquire("tiny") as served:
                got = time.perf_counter()
                assert served.version == version, served.version
            totals.append(got - renamed)
            wait_for(lambda: settled(swap, "tiny"), 30, "old version retired")
            remove_version(base, version - 1)
    return totals, loads


def _tfs_swaps(ctx: Context, n: int) -> list[float]:
    """n swaps under the TF Serving polling emulation: rename -> available seconds."""
    tiny = ctx.exports["tiny"]
    base = ctx.work / "fig1-tfs" / "tiny"
    base.mkdir(parents=True)
    publish(tiny[0], base, 1)
    rng = random.Random(2)
    totals: list[float] = []
    with TFServingPollEmulation(base) as tfs:
        tfs.wait(1, 60)
        for version in range(2, n + 2):
            time.sleep(rng.uniform(0, 1.0))
            renamed = publish(tiny[version % len(tiny)], base, version)
            totals.append(tfs.wait(version, 60) - renamed)
            remove_version(base, version - 1)
    return totals


def figure1(ctx: Context) -> list[Row]:
    n_fast, n_poll = ctx.n(12, 40), ctx.n(5, 30)
    warm = warmup_supported()
    floors = [floor(p) for p in ctx.exports["tiny"] * ctx.n(3, 8)]
    floor_cost = med(f.load + (f.first_call if warm else 0.0) for f in floors)
    floor_text = (f"floor (plain load{' + first call' if warm else ''}) "
                  f"{ms(floor_cost)}")
    inotify, ms_loads = _modelswap_swaps(ctx, "inotify", n_fast, 0.05)
    poll, _ = _modelswap_swaps(ctx, "poll", n_poll, 1.0)
    tfs = _tfs_swaps(ctx, n_poll)
    tfs_loads_floor = floor_cost  # the emulation's load is a plain load: same floor
    over = [t - floor_cost for t in inotify]
    over_poll = [t - floor_cost for t in poll]
    over_tfs = [t - tfs_loads_floor for t in tfs]
    p50, p99 = pct(over, 50), pct(over, 99)
    tfs50 = pct(over_tfs, 50)
    ctx.note(f"fig 1: inotify rename->acquire totals {spread(inotify, 1e3)} ms; floor loads "
             f"{spread([f.load for f in floors], 1e3)} ms; modelswap's own load stage "
             f"{spread(ms_loads, 1e3)} ms; poll-mode totals {spread(poll, 1e3)} ms; "
             f"TF Serving emulation totals {spread(tfs, 1e3)} ms")
    label = f"tiny, n={len(over)}"
    return [
        Row("1 detect→available overhead p50 (inotify, " + label + ")", ms(p50), "≤ 10 ms",
            floor_text, "—", verdict(p50 <= 0.010)),
        Row("1 detect→available overhead p99 (inotify, " + label + ")", ms(p99), "≤ 50 ms",
            floor_text, "—", verdict(p99 <= 0.050)),
        Row("1 overhead p50 vs 1 s polling", ms(p50), "≥ 20x lower",
            f"TF Serving poll EMULATION p50 {ms(tfs50)} (n={len(over_tfs)})",
            f"{tfs50 / p50:.0f}x lower" if p50 > 0 else "∞", verdict(p50 * 20 <= tfs50)),
        Row("1 overhead p50, modelswap poll mode (poll_interval 1 s)",
            f"{ms(pct(over_poll, 50))} (p99 {ms(pct(over_poll, 99))}, n={len(over_poll)})",
            "— (for comparison)", f"TF Serving poll EMULATION p50 {ms(tfs50)}",
            f"{pct(over_poll, 50) / tfs50:.2f}x" if tfs50 > 0 else "—", INFO),
    ]


def _big_swaps(ctx: Context, reps: int, extra: dict[str, str], tag: str) -> dict[str, list[float]]:
    """Swap the big model `reps` times; interleave a floor load before each swap."""
    from modelswap import ModelEvent, ModelSwap, State

    big = ctx.exports["big"]
    base = ctx.work / f"big-{tag}" / "big"
    base.mkdir(parents=True)
    publish(big[0], base, 1)
    out: dict[str, list[float]] = {k: [] for k in (
        "total", "floor_load", "floor_first", "first", "steady_p50")}

    def on_event(event: ModelEvent) -> None:
        if event.state is State.AVAILABLE and event.version > 1:
            for stage, seconds in event.durations:
                out.setdefault(f"stage {stage}", []).append(seconds)

    with ModelSwap(make_config({"big": base}, extra=extra)) as swap:
        swap.subscribe(on_event)
        swap.wait_until_available("big", timeout=300)
        for r in range(reps):
            version = r + 2
            source = big[(r + 1) % len(big)]
            f = floor(source)
            out["floor_load"].append(f.load)
            out["floor_first"].append(f.first_call)
            renamed = publish(source, base, version)
            swap.wait_until_available("big", version=version, timeout=300)
            with swap.acquire("big") as served:
                out["total"].append(time.perf_counter() - renamed)
                signature = served.signatures["serving_default"]
                feed = inputs_for(signature)
                started = time.perf_counter()
                signature(**feed)
                out["first"].append(time.perf_counter() - started)
                steady: list[float] = []
                for _ in range(ctx.n(10, 30)):
                    started = time.perf_counter()
                    signature(**feed)
                    steady.append(time.perf_counter() - started)
                out["steady_p50"].append(pct(steady, 50))
            wait_for(lambda: settled(swap, "big"), 60, "old big version retired")
            remove_version(base, version - 1)
    return out


def figures_4_and_8(ctx: Context) -> list[Row]:
    reps = ctx.n(2, 5)
    warm = warmup_supported()
    default = _big_swaps(ctx, reps, {}, "default")
    label = ctx.big_label
    floor_cost = [a + (b if warm else 0.0) for a, b in
                  zip(default["floor_load"], default["floor_first"], strict=True)]
    overhead = (med(default["total"]) - med(floor_cost)) / med(floor_cost)
    stages = "; ".join(f"{k} {spread(v)} s" for k, v in default.items() if k.startswith("stage"))
    ctx.note(f"fig 8: rename->available {spread(default['total'])} s; floor load "
             f"{spread(default['floor_load'])} s, floor first call "
             f"{spread(default['floor_first'])} s; modelswap's ModelEvent durations: {stages}")
    total = med(default["total"])
    rows = [Row(f"8 load + warmup over floor ({label}, n={reps})",
                f"{overhead * 100:+.1f}% ({total:.2f} s)", "≤ 1.10x",
                f"floor {'load + first call of each distinct function' if warm else 'load'} "
                f"{med(floor_cost):.2f} s", f"{total / med(floor_cost):.2f}x",
                verdict(total <= 1.10 * med(floor_cost)))]
    warm_s = default.get("stage warmup", [])
    if warm_s:  # the same without warmup: gate + validation + bookkeeping over a plain load
        bare = [t - w for t, w in zip(default["total"], warm_s, strict=True)]
        plain = med(default["floor_load"])
        rows.append(Row(f"8 same, excluding warmup (rename->available - warmup stage), n={reps}",
                        f"{(med(bare) - plain) / plain * 100:+.1f}% ({med(bare):.2f} s)",
                        "report", f"floor load {plain:.2f} s", f"{med(bare) / plain:.2f}x",
                        INFO))
    cold = _big_swaps(ctx, reps, {"warmup": "off"}, "cold") if warm else default
    steady = med(cold["steady_p50"])
    first = med(cold["first"])
    rows.append(Row(f"4 first call after swap, cold ({label})",
                    f"{ms(first)} ({first / steady:.1f}x steady p50 {ms(steady)})",
                    "report", f"floor first call {ms(med(cold['floor_first']))}",
                    f"{first / med(cold['floor_first']):.2f}x", INFO))
    if warm:
        w_first, w_steady = med(default["first"]), med(default["steady_p50"])
        rows.append(Row(f"4 first call after swap, warmup ({label})",
                        f"{ms(w_first)} ({w_first / w_steady:.2f}x steady p50)",
                        "≤ 1.5x steady p50", f"steady p50 {ms(w_steady)}",
                        f"{w_first / w_steady:.2f}x", verdict(w_first <= 1.5 * w_steady)))
    else:
        rows.append(Row(f"4 first call after swap, warmup ({label})",
                        "n/a (warmup not built)", "≤ 1.5x steady p50",
                        f"steady p50 {ms(steady)}", "—", NA))
    return rows

