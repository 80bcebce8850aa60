"""Figure 2: `acquire()` + release cost against an uncontended `with threading.Lock():`,
and with 8 threads acquiring at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .common import Context, Row, make_config, med, spread, verdict
from .models import publish


def _loop_ns(body: Callable[[int], None], n: int) -> float:
    started = time.perf_counter_ns()
    body(n)
    return (time.perf_counter_ns() - started) / n


def _threaded_ns(body: Callable[[int], None], n: int, threads: int) -> float:
    """Aggregate ns per operation with `threads` threads running `body(n // threads)`."""
    per = n // threads
    barrier = threading.Barrier(threads + 1)

    def run() -> None:
        barrier.wait()
        body(per)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for w in workers:
        w.start()
    barrier.wait()
    started = time.perf_counter_ns()
    for w in workers:
        w.join()
    return (time.perf_counter_ns() - started) / (per * threads)


def figure2(ctx: Context) -> list[Row]:
    from modelswap import ModelSwap

    base = ctx.work / "fig2" / "tiny"
    base.mkdir(parents=True)
    publish(ctx.exports["tiny"][0], base, 1)
    n, reps = ctx.n(100_000, 400_000), ctx.n(3, 7)
    lock = threading.Lock()

    def locked(k: int) -> None:
        for _ in range(k):
            with lock:
                pass

    def empty(k: int) -> None:
        for _ in range(k):
            pass

    with ModelSwap(make_config({"tiny": base})) as swap:
        swap.wait_until_available("tiny", timeout=60)
        acquire = swap.acquire

        def acquired(k: int) -> None:
            for _ in range(k):
                with acquire("tiny"):
                    pass

        loop, lock1, acq1, lock8, acq8 = [], [], [], [], []
        for _ in range(reps):  # interleaved, so drift hits all alike
            loop.append(_loop_ns(empty, n))
            lock1.append(_loop_ns(locked, n))
            acq1.append(_loop_ns(acquired, n))
            lock8.append(_threaded_ns(locked, n, 8))
            acq8.append(_threaded_ns(acquired, n, 8))
    f0 = "{:.0f}"
    ctx.note(f"fig 2: ns/op empty loop {spread(loop, fmt=f0)}; lock {spread(lock1, fmt=f0)}; "
             f"acquire+release {spread(acq1, fmt=f0)}; 8 threads: lock "
             f"{spread(lock8, fmt=f0)}, acquire {spread(acq8, fmt=f0)}")
    a1, l1, a8, l8 = med(acq1), med(lock1), med(acq8), med(lock8)
    flat = a8 / a1
    return [
        Row("2 acquire()+release, 1 thread", f"{a1:.0f} ns", "≤ 5x lock",
            f"`with Lock():` {l1:.0f} ns", f"{a1 / l1:.1f}x", verdict(a1 <= 5 * l1)),
        Row("2 acquire()+release, 8 threads at once (aggregate ns/op)",
            f"{a8:.0f} ns ({flat:.2f}x 1 thread)", "flat: ≤ 1.5x 1 thread",
            f"8 threads on one Lock {l8:.0f} ns", f"{a8 / l8:.1f}x", verdict(flat <= 1.5)),
    ]
