"""Figure 3: consumer latency while the big model (ResNet50) swaps in, with 1 and 4 consumer
threads calling the tiny model through `acquire()`: the shipped GC strategy and the previous
default (see gcstrategy.py), against the floor (a plain load in a thread). Each swap has two
windows: the swap itself (rename → the old version retired) and the retirement collection
after it (→ the gc thread is done)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from . import gcstrategy
from .common import (
    FAIL,
    INFO,
    PASS,
    Consumers,
    Context,
    Row,
    make_config,
    med,
    ms,
    pct,
    settled,
    wait_for,
)
from .gcstrategy import GcPauses, Strategy
from .models import publish, remove_version


@dataclass
class Sample:
    steady_p99: float
    p99: float
    worst: float
    calls: int
    failures: int
    load: float  # rename (or load start) -> old version retired (or its collection began)
    gc_worst: float
    gc_gen: int
    after_worst: float = 0.0  # worst call during the retirement collection
    collect_s: float = 0.0  # that collection's duration (gc thread)


@dataclass
class Result:
    name: str
    samples: dict[int, list[Sample]] = field(default_factory=dict)  # consumers -> samples

    def get(self, n: int, what: str) -> float:
        values = [getattr(s, what) for s in self.samples.get(n, [])]
        if what in ("worst", "gc_worst", "after_worst", "collect_s"):
            return max(values, default=float("nan"))
        if what == "failures":
            return float(sum(values))
        return med(values)

    def rel(self, n: int) -> float:
        """Median over repeats of (p99 during the load / steady p99)."""
        return med(s.p99 / s.steady_p99 for s in self.samples.get(n, []))


def _measure(consumers: Consumers, gcs: GcPauses, steady_s: float,
             load: Any) -> Sample:
    """Steady window, then `load()`: returns its start time and, where the strategy
    collects at retirement, that collection's (start, end); latencies in each window (the
    swap window ends where the collection starts)."""
    time.sleep(0.2)
    s0 = time.perf_counter()
    time.sleep(steady_s)
    s1 = time.perf_counter()
    began, collection = load()
    end = time.perf_counter()
    if collection is not None:
        end = min(end, collection[0])
        time.sleep(0.05)  # let a call stalled by the collection finish
    steady = consumers.window(s0, s1)
    # a call still running when the collection began is the collection's, not the swap's
    during = [d for per in consumers.samples for s, d in per
              if began <= s < end and (collection is None or s + d <= collection[0])]
    worst_gc, gen = gcs.longest(began, end)
    sample = Sample(pct(steady, 99), pct(during, 99), max(during, default=0.0), len(during),
                    len(consumers.failures), end - began, worst_gc, gen)
    if collection is not None:
        after = consumers.window(collection[0] - 0.02, collection[1] + 0.05)
        sample.after_worst = max(after, default=0.0)
        sample.calls += len(after)
        sample.collect_s = collection[1] - collection[0]
    return sample


def _run_modelswap(ctx: Context, m: Strategy, counts: tuple[int, ...], reps: int) -> Result:
    from modelswap import ModelSwap
    from modelswap.load import heap

    tiny, big = ctx.exports["tiny"], ctx.exports["big"]
    root = ctx.work / f"fig3-{m.name.split(':')[0].replace(' ', '_')}"
    bases = {"tiny": root / "tiny", "big": root / "big"}
    for b in bases.values():
        b.mkdir(parents=True)
    publish(tiny[0], bases["tiny"], 1)
    publish(big[0], bases["big"], 1)
    undo = m.apply()
    result = Result(m.name)
    try:
        with ModelSwap(make_config(bases)) as swap:
            swap.wait_until_available("tiny", timeout=120)
            swap.wait_until_available("big", timeout=300)
            version = 1
            for n in counts:
                for _ in range(reps):
                    version += 1
                    v = version

                    def load(v: int = v) -> tuple[float, tuple[float, float] | None]:
                        runs = gcstrategy.collections_done()
                        # consecutive versions differ (an identical one is not loaded)
                        renamed = publish(big[(v - 1) % len(big)], bases["big"], v)
                        swap.wait_until_available("big", version=v, timeout=300)
                        wait_for(lambda: settled(swap, "big"), 60, "old big retired")
                        if not m.collects:
                            return renamed, None
                        gcstrategy.wait_collection(runs)
                        return renamed, heap.collector.last

                    with GcPauses() as gcs, Consumers(swap, "tiny", n) as consumers:
                        sample = _measure(consumers, gcs, ctx.n(1, 2), load)
                    result.samples.setdefault(n, []).append(sample)
                    remove_version(bases["big"], v - 1)
    finally:
        undo()
    return result


def _run_floor(ctx: Context, counts: tuple[int, ...], reps: int) -> Result:
    """Consumers as above, but the big model is loaded by a plain tf.saved_model.load in a
    thread (no modelswap in the load path): TensorFlow's own impact."""
    import tensorflow as tf

    from modelswap import ModelSwap

    base = ctx.work / "fig3-floor" / "tiny"
    base.mkdir(parents=True)
    publish(ctx.exports["tiny"][0], base, 1)
    big = ctx.exports["big"]
    held: list[Any] = [tf.saved_model.load(str(big[0]))]  # the "old version", still loaded
    result = Result("floor: plain tf.saved_model.load in a thread")
    with ModelSwap(make_config({"tiny": base})) as swap:
        swap.wait_until_available("tiny", timeout=120)
        k = 0
        for n in counts:
            for _ in range(reps):
                k += 1
                path = str(big[k % len(big)])

                def load(path: str = path) -> tuple[float, tuple[float, float] | None]:
                    began = time.perf_counter()
                    out: list[Any] = []
                    t = threading.Thread(target=lambda: out.append(tf.saved_model.load(path)))
                    t.start()
                    t.join()
                    held[:] = out
                    return began, None

                with GcPauses() as gcs, Consumers(swap, "tiny", n) as consumers:
                    sample = _measure(consumers, gcs, ctx.n(1, 2), load)
                result.samples.setdefault(n, []).append(sample)
    return result


def _describe(r: Result, n: int) -> str:
    return (f"p99 {r.rel(n):.1f}x steady ({ms(r.get(n, 'p99'))} vs "
            f"{ms(r.get(n, 'steady_p99'))}), worst {ms(r.get(n, 'worst'))}")


def figure3(ctx: Context) -> tuple[list[Row], list[Result]]:
    counts, reps = (1, 4), ctx.n(1, 3)
    floor = _run_floor(ctx, counts, reps)
    shipped = _run_modelswap(ctx, gcstrategy.SHIPPED, counts, reps)
    previous = _run_modelswap(ctx, gcstrategy.PREVIOUS, counts, reps)
    label = ctx.big_label
    rows: list[Row] = []
    for n in counts:
        thr = f"{n} consumer thread{'s' * (n > 1)}"
        rel, worst = shipped.rel(n), shipped.get(n, "worst")
        rows.append(Row(
            f"3 consumer p99 during {label} swap, {thr}",
            f"{rel:.1f}x steady ({ms(shipped.get(n, 'p99'))} vs "
            f"{ms(shipped.get(n, 'steady_p99'))})", "≤ 3x steady p99",
            f"floor (plain load): {floor.rel(n):.1f}x; previous default: {previous.rel(n):.1f}x",
            f"{rel / floor.rel(n):.2f}x floor", PASS if rel <= 3 else FAIL))
        rows.append(Row(
            f"3 worst consumer call during swap, {thr}", ms(worst), "≤ 50 ms",
            f"floor: {ms(floor.get(n, 'worst'))}; previous default: "
            f"{ms(previous.get(n, 'worst'))}",
            f"{worst / floor.get(n, 'worst'):.2f}x floor", PASS if worst <= 0.050 else FAIL))
        after = shipped.get(n, "after_worst")
        rows.append(Row(
            f"3 worst call during the retirement collection after it, {thr}", ms(after),
            "report", f"the collection (gc thread) took {ms(shipped.get(n, 'collect_s'))}",
            "—", INFO))
        load, before = shipped.get(n, "load"), previous.get(n, "load")
        rows.append(Row(
            f"3 swap time (rename → old retired) during it, {thr}", f"{load:.2f} s",
            "≤ 1.5x previous", f"previous default {before:.2f} s; floor load "
            f"{floor.get(n, 'load'):.2f} s", f"{load / before:.2f}x",
            PASS if load <= 1.5 * before else FAIL))
    failed = sum(int(shipped.get(n, "failures")) for n in counts)
    calls = sum(s.calls for n in counts for s in shipped.samples.get(n, []))
    rows.append(Row("3 failed consumer calls during swaps", f"{failed} of {calls}", "0",
                    "—", "—", PASS if failed == 0 else FAIL))
    for r in [floor, shipped, previous]:
        for n in counts:
            ctx.note(f"fig 3 [{r.name}] {n} thr: {_describe(r, n)}; swap/load "
                     f"{r.get(n, 'load'):.2f} s; longest GC pause in window "
                     f"{ms(r.get(n, 'gc_worst'))} (generations "
                     f"{[s.gc_gen for s in r.samples[n]]}); failures {int(r.get(n, 'failures'))}; "
                     f"per-rep p99 ms {[round(s.p99 * 1e3, 2) for s in r.samples[n]]}, "
                     f"worst ms {[round(s.worst * 1e3, 1) for s in r.samples[n]]}; "
                     f"retirement collection ms "
                     f"{[round(s.collect_s * 1e3, 1) for s in r.samples[n]]}, worst call "
                     f"during it ms {[round(s.after_worst * 1e3, 1) for s in r.samples[n]]}")
    return rows, [floor, shipped, previous]
