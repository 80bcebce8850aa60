"""Where does `tf.saved_model.load` hold the GIL? A diagnostic, not a figure.

    python -m bench.gilprobe SAVED_MODEL_DIR [--threshold-ms 4]

One consumer thread calls a tiny model in a loop and records every call slower than the
threshold (a stall: it could not get the GIL back). Meanwhile a loader thread loads
SAVED_MODEL_DIR with `sys.setprofile` recording every C call that took longer than 3 ms
(first modelswap's completeness gate on the folder, as the gate pool does, then the load),
and `gc.callbacks` record every garbage-collector pause. Each stall is attributed to the
loader C call or GC pause that overlaps it most; a stall with neither is the switch-interval
convoy (the loader running Python bytecode, handing the GIL back only every 5 ms).
The profiler slows the Python parts of the load; C-call and GC durations stay meaningful.
`py-spy record --gil -r 250 -f raw -o gil.txt -- python ...` gives the sampled view.
"""

from __future__ import annotations

import argparse
import collections
import gc
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

Span = tuple[float, float, str]  # start, end, what


def probe(path: Path, threshold: float) -> tuple[list[tuple[float, float]], list[Span]]:
    import tensorflow as tf

    from modelswap.cli.demo import export_linear
    from modelswap.gate.judge import Gate

    tiny_dir = Path(tempfile.mkdtemp(prefix="gilprobe-")) / "tiny"
    tiny = tf.saved_model.load(str(export_linear(tiny_dir, 0.5, 1.0)))
    fn, x = tiny.signatures["serving_default"], tf.constant([[1.0]])
    for _ in range(100):
        fn(x=x)
    stalls: list[tuple[float, float]] = []
    spans: list[Span] = []
    stop = threading.Event()

    def consume() -> None:
        pc = time.perf_counter
        while not stop.is_set():
            started = pc()
            fn(x=x)
            ended = pc()
            if ended - started > threshold:
                stalls.append((started, ended))

    gc_started: dict[int, float] = {}

    def on_gc(phase: str, info: dict[str, int]) -> None:
        now = time.perf_counter()
        if phase == "start":
            gc_started[threading.get_ident()] = now
        else:
            began = gc_started.pop(threading.get_ident(), now)
            spans.append((began, now, f"gc generation {info['generation']}"))

    def load() -> None:
        calls: list[tuple[float, Any, FrameType]] = []
        pc = time.perf_counter

        def prof(frame: FrameType, event: str, arg: Any) -> None:
            if event == "c_call":
                calls.append((pc(), arg, frame))
            elif event in ("c_return", "c_exception") and calls:
                began, func, where = calls.pop()
                if pc() - began > 0.003:
                    name = getattr(func, "__qualname__", repr(func))
                    file = where.f_code.co_filename.split("site-packages/")[-1]
                    spans.append((began, pc(), f"{name} @ {file}:{where.f_lineno}"))

        sys.setprofile(prof)
        try:
            # modelswap's completeness gate first, as the gate pool runs it before a load:
            # its parse of saved_model.pb (ParseFromString) holds the GIL too
            began = pc()
            verdict = Gate(0.0).check(path, frozenset({"serve"}), None)
            spans.append((began, pc(), f"modelswap gate check, whole (ready={verdict.ready})"))
            tf.saved_model.load(str(path))
        finally:
            sys.setprofile(None)

    gc.callbacks.append(on_gc)
    consumer = threading.Thread(target=consume)
    consumer.start()
    time.sleep(0.3)
    loader = threading.Thread(target=load)
    loader.start()
    loader.join()
    stop.set()
    consumer.join()
    gc.callbacks.remove(on_gc)
    return stalls, spans


def report(stalls: list[tuple[float, float]], spans: list[Span]) -> str:
    by_cause: dict[str, list[float]] = collections.defaultdict(list)
    for s, e in stalls:
        # the shortest span that covers most of the stall (a C call inside the gate check
        # is named, not the gate check as a whole)
        covering = [(se - ss, what) for ss, se, what in spans
                    if min(e, se) - max(s, ss) > 0.5 * (e - s)]
        best = min(covering, default=(0.0, ""))
        cause = best[1] if covering else "Python bytecode (switch-interval convoy)"
        by_cause[cause].append(e - s)
    lines = [f"{len(stalls)} consumer stalls, {sum(e - s for s, e in stalls) * 1e3:.0f} ms in all",
             f"{'cause':<90} {'stalls':>6} {'sum ms':>8} {'max ms':>8}"]
    for cause, d in sorted(by_cause.items(), key=lambda kv: -max(kv[1])):
        lines.append(f"{cause[:90]:<90} {len(d):>6} {sum(d) * 1e3:>8.1f} {max(d) * 1e3:>8.1f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path", type=Path, help="a SavedModel folder to load (e.g. ResNet50)")
    parser.add_argument("--threshold-ms", type=float, default=4.0)
    args = parser.parse_args()
    from modelswap.service.logs import quiet_tensorflow

    quiet_tensorflow()
    print(report(*probe(args.path, args.threshold_ms / 1e3)))


if __name__ == "__main__":
    main()
