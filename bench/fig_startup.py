"""Figure 7: start-up time to all-available for 8 models (the ~20 MB dense one) with
`loader.threads` 1, 2 and 4, against the floors: 8 plain loads one after another, and the
same 8 plain loads on 2 threads (what 2 threads can gain at all in one process: a load
holds the GIL most of the time)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from .baselines import floor
from .common import INFO, Context, Row, make_config, med, spread, verdict, warmup_supported
from .models import publish


def _parallel_floor(paths: list[Path], warm: bool, threads: int = 2) -> float:
    """Wall time of `floor` over `paths`, shared by `threads` threads."""
    started = time.perf_counter()
    workers = [threading.Thread(target=lambda j=j: [floor(p) for p in paths[j::threads]])
               for j in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return time.perf_counter() - started


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
    parallel: list[float] = []
    times: dict[int, list[float]] = {1: [], 2: [], 4: []}
    for _ in range(reps):
        cost = [floor(base / "1") for base in bases.values()]
        floors.append(sum(f.load + (f.first_call if warm else 0.0) for f in cost))
        parallel.append(_parallel_floor([base / "1" for base in bases.values()], warm))
        for threads in times:
            started = time.perf_counter()
            with ModelSwap(make_config(bases, threads=threads)) as swap:
                for name in bases:
                    swap.wait_until_available(name, timeout=300)
                times[threads].append(time.perf_counter() - started)
    base_s = med(floors)
    ctx.note(f"fig 7: floor (8 sequential plain loads, summed) {spread(floors)} s; "
             f"8 plain loads on 2 threads {spread(parallel)} s; "
             + "; ".join(f"threads={t}: {spread(v)} s" for t, v in times.items()))
    rows = [Row(f"7 start-up to all-available, 8 dense models, loader.threads={t}",
                f"{med(v):.2f} s", "report", f"floor: 8 plain loads {base_s:.2f} s",
                f"{med(v) / base_s:.2f}x floor", INFO) for t, v in times.items()]
    two, one, par = med(times[2]), med(times[1]), med(parallel)
    rows.append(Row("7 start-up, loader.threads=2 over threads=1", f"{two:.2f} s",
                    "≤ 0.7x threads=1", f"threads=1 {one:.2f} s; floor on 2 threads: 8 plain "
                    f"loads {par:.2f} s = {par / base_s:.2f}x 8 sequential ones",
                    f"{two / one:.2f}x", verdict(two <= 0.7 * one)))
    return rows
