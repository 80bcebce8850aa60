"""Figure 7: start-up time to all-available for 8 models (the ~20 MB dense one) with
`loader.threads` 1, 2 and 4, against the floor: 8 plain loads one after another."""

from __future__ import annotations

import time

from .baselines import floor
from .common import INFO, Context, Row, make_config, med, spread, verdict, warmup_supported
from .models import publish


def figure7(ctx: Context) -> list[Row]:
    from modelswap import ModelSwap

    dense = ctx.exports["dense"]
    bases = {f"m{i}": ctx.work / "fig7" / f"m{i}" for i in range(8)}
    for i, base in enumerate(bases.values()):
        base.mkdir(parents=True)
        publish(dense[i % len(dense)], base, 1)
    reps = ctx.n(1, 3)
    warm = warmup_supported()
    floors: list[float] = []
    times: dict[int, list[float]] = {1: [], 2: [], 4: []}
    for _ in range(reps):
        cost = [floor(base / "1") for base in bases.values()]
        floors.append(sum(f.load + (f.first_call if warm else 0.0) for f in cost))
        for threads in times:
            started = time.perf_counter()
            with ModelSwap(make_config(bases, threads=threads)) as swap:
                for name in bases:
                    swap.wait_until_available(name, timeout=300)
                times[threads].append(time.perf_counter() - started)
    base_s = med(floors)
    ctx.note(f"fig 7: floor (8 sequential plain loads, summed) {spread(floors)} s; "
             + "; ".join(f"threads={t}: {spread(v)} s" for t, v in times.items()))
    rows = [Row(f"7 start-up to all-available, 8 dense models, loader.threads={t}",
                f"{med(v):.2f} s", "report", f"floor: 8 plain loads {base_s:.2f} s",
                f"{med(v) / base_s:.2f}x floor", INFO) for t, v in times.items()]
    two, one = med(times[2]), med(times[1])
    rows.append(Row("7 start-up, loader.threads=2 over threads=1", f"{two:.2f} s",
                    "≤ 0.7x threads=1", f"threads=1 {one:.2f} s", f"{two / one:.2f}x",
                    verdict(two <= 0.7 * one)))
    return rows
