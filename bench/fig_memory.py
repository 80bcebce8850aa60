"""Figure 5: RSS growth over many swaps of the ~20 MB model (each version's weights differ),
time from last release to the retired model and its variables being freed (weakrefs), per
GC strategy (gcstrategy.py), and peak RSS during a swap per swap policy."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from typing import Any

from . import gcstrategy
from .common import (
    INFO,
    Context,
    Row,
    make_config,
    med,
    ms,
    peak_rss_mb,
    reset_peak_rss,
    rss_mb,
    settled,
    spread,
    verdict,
    wait_for,
)
from .gcstrategy import Strategy
from .models import folder_mb, publish, remove_version


def _swap_many(ctx: Context, total: int, early: int, strategy: Strategy,
               timed: int, cap: float) -> tuple[float, float, list[float], int]:
    """`total` swaps of the dense model (consecutive versions have different weights).
    Before each swap the bench holds the serving version; once it is retired, the bench
    releases it and times until the model object AND every one of its variables are gone
    (weakrefs), for the first `timed` swaps, waiting at most `cap` seconds each.

    Returns (RSS after `early` swaps, RSS after `total`, free delays (s), not freed in 1 s).
    """
    from modelswap import ModelSwap, State

    dense = ctx.exports["dense"]
    base = ctx.work / f"fig5-{strategy.name.split(':')[0].replace(' ', '_')}" / "dense"
    base.mkdir(parents=True)
    publish(dense[0], base, 1)
    delays: list[float] = []
    late = 0
    rss_early = 0.0
    undo = strategy.apply()
    try:
        with ModelSwap(make_config({"dense": base})) as swap:
            swap.wait_until_available("dense", timeout=120)
            for version in range(2, total + 2):
                held = swap.acquire("dense")
                refs = [weakref.ref(held.model)] + [
                    weakref.ref(v) for v in getattr(held.model, "variables", ())]
                publish(dense[version % len(dense)], base, version)
                swap.wait_until_available("dense", version=version, timeout=120)

                def retired(old: int = version - 1) -> bool:
                    return any(s.version == old and s.state is State.UNLOADING
                               for s in swap.status()["dense"])

                wait_for(retired, 60, "old dense version retired")
                released = time.perf_counter()
                held.release()
                del held
                if version - 2 < timed:
                    while (any(r() is not None for r in refs)
                           and time.perf_counter() - released < cap):
                        time.sleep(0.0005)
                    delay = time.perf_counter() - released
                    delays.append(delay)
                    late += delay > 1.0
                del refs
                wait_for(lambda: settled(swap, "dense"), 60, "dense settled")
                remove_version(base, version - 1)
                if version - 1 == early:
                    time.sleep(1.0)  # after the post-swap collection (0.5 s), if any
                    rss_early = rss_mb()
            time.sleep(1.0)
            rss_late = rss_mb()
    finally:
        undo()
    return rss_early, rss_late, delays, late


def _floor_growth(ctx: Context, total: int, early: int) -> tuple[float, float]:
    """The same count of plain loads (+ first call) of the dense model, keeping only the
    newest alive (as a swap does): RSS after `early` and after `total` loads."""
    import tensorflow as tf

    from .common import inputs_for

    dense = ctx.exports["dense"]
    held: Any = None
    rss_early = 0.0
    for i in range(1, total + 1):
        model = tf.saved_model.load(str(dense[i % len(dense)]))
        signature = model.signatures["serving_default"]
        signature(**inputs_for(signature))
        held = model
        del model, signature
        if i == early:
            gc.collect()
            rss_early = rss_mb()
    del held
    gc.collect()
    return rss_early, rss_mb()


def _sample(stop: threading.Event, into: list[float]) -> None:
    while not stop.is_set():
        into.append(rss_mb())
        time.sleep(0.005)


def _peak(ctx: Context, policy: str, reps: int) -> tuple[list[float], float]:
    """Peak RSS above the pre-swap RSS during a swap of the big model (MB); model size MB."""
    from modelswap import ModelSwap

    big = ctx.exports["big"]
    base = ctx.work / f"fig5-peak-{policy}" / "big"
    base.mkdir(parents=True)
    publish(big[0], base, 1)
    peaks: list[float] = []
    with ModelSwap(make_config({"big": base}, swap_policy=policy)) as swap:
        swap.wait_until_available("big", timeout=300)
        for r in range(reps):
            version = r + 2
            gc.collect()
            before = rss_mb()
            sampled = [before]
            stop = threading.Event()
            hwm = reset_peak_rss()

            sampler = None if hwm else threading.Thread(
                target=_sample, args=(stop, sampled), daemon=True)
            if sampler:
                sampler.start()
            publish(big[(version - 1) % len(big)], base, version)  # never the same as before
            swap.wait_until_available("big", version=version, timeout=300)
            wait_for(lambda: settled(swap, "big"), 120, "big settled")
            stop.set()
            if sampler:
                sampler.join()
            peak = peak_rss_mb() if hwm else max(sampled)
            peaks.append(peak - before)
            remove_version(base, version - 1)
    return peaks, folder_mb(big[0])


def figure5(ctx: Context) -> list[Row]:
    total, early = ctx.n(40, 200), ctx.n(10, 20)
    f_early, f_late = _floor_growth(ctx, total, early)
    f_growth = f_late / f_early
    size = folder_mb(ctx.exports["dense"][0])
    rows: list[Row] = []
    shipped_growth = 0.0
    for strategy in (gcstrategy.SHIPPED, gcstrategy.PREVIOUS):
        shipped = strategy is gcstrategy.SHIPPED
        timed = total if shipped else ctx.n(10, 20)
        rss_early, rss_late, delays, late = _swap_many(
            ctx, total, early, strategy, timed, 5.0 if shipped else 1.0)
        growth = rss_late / rss_early
        ctx.note(f"fig 5 [{strategy.name}]: dense model {size:.1f} MB on disk; RSS "
                 f"{rss_early:.0f} MB after {early} swaps, {rss_late:.0f} MB after {total}; "
                 f"floor (plain loads in a loop) {f_early:.0f} MB after {early}, {f_late:.0f} "
                 f"MB after {total}; free delays {spread(delays, 1e3)} ms (cap "
                 f"{5.0 if shipped else 1.0:g} s), {late} of {len(delays)} later than 1 s")
        if shipped:
            shipped_growth = growth
            rows += [
                Row(f"5 RSS after {total} swaps / after {early} (dense {size:.0f} MB, "
                    f"weights differ)", f"{growth:.3f}x ({rss_late:.0f} vs {rss_early:.0f} MB)",
                    "≤ 1.05x", f"floor (plain loads): {f_growth:.3f}x ({f_late:.0f} vs "
                    f"{f_early:.0f} MB)", f"{growth / f_growth:.3f}x floor",
                    verdict(growth <= 1.05)),
                Row(f"5 retired model and its variables freed after last release (weakrefs, "
                    f"n={len(delays)})", f"max {ms(max(delays))}, median {ms(med(delays))}",
                    "all ≤ 1 s", "—", "—", verdict(late == 0)),
            ]
        else:
            rows.append(Row(
                f"5 same, {strategy.name} (same run)",
                f"RSS {growth:.3f}x ({rss_late:.0f} vs {rss_early:.0f} MB); {late} of "
                f"{len(delays)} timed retirements not freed within 1 s", "—",
                f"shipped: RSS {shipped_growth:.3f}x", f"{growth / shipped_growth:.3f}x",
                INFO))
    reps = ctx.n(1, 2)
    for policy in ("availability", "resource"):
        peaks, big_mb = _peak(ctx, policy, reps)
        rows.append(Row(f"5 peak RSS during a {ctx.big_label} swap, {policy}",
                        f"+{med(peaks):.0f} MB (n={len(peaks)})", "report",
                        f"model on disk {big_mb:.0f} MB", f"{med(peaks) / big_mb:.2f}x", INFO))
    return rows
