"""`modelswap demo`: export a tiny model, serve it, swap in v2 under load, print the timeline."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from modelswap.api import ModelSwap
from modelswap.config import parse_config
from modelswap.events import ModelEvent


def export_linear(path: Path, slope: float, offset: float, *, staging: Path | None = None) -> Path:
    """Save `y = slope * x + offset` (signature `serving_default`, input `x` [None, 1] float32).

    With `staging`, save there first and rename into `path` (an atomic publish).
    """
    import tensorflow as tf

    class Linear(tf.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.slope = tf.Variable(slope, dtype=tf.float32)
            self.offset = tf.Variable(offset, dtype=tf.float32)

        @tf.function(  # type: ignore[untyped-decorator]
            input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
        def __call__(self, x: Any) -> dict[str, Any]:
            return {"y": x * self.slope + self.offset}

    module = Linear()
    target = staging / path.name if staging is not None else path
    tf.saved_model.save(module, str(target), signatures={"serving_default": module.__call__})
    if staging is not None:
        os.replace(target, path)
    return path


def run_demo(out: Any = print) -> int:
    """Run the demo in a temporary folder (removed at the end); returns the number of
    failed consumer calls (0 is a pass)."""
    root = Path(tempfile.mkdtemp(prefix="modelswap-demo-"))
    try:
        return _demo(root, out)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _demo(root: Path, out: Any) -> int:
    import tensorflow as tf

    base, staging = root / "models" / "linear", root / "staging"
    base.mkdir(parents=True)
    staging.mkdir()
    export_linear(base / "1", 0.5, 2.0)
    config = parse_config(f"models:\n  - name: linear\n    base_path: {base}\n")
    t0 = time.monotonic()
    timeline: list[tuple[float, str]] = []

    def note(what: str) -> None:
        timeline.append((time.monotonic() - t0, what))

    def on_event(event: ModelEvent) -> None:
        detail = f" ({event.error_type}: {event.error})" if event.error else ""
        note(f"v{event.version} {event.state.value}{detail}")

    calls: dict[int, int] = {}
    failures: list[str] = []
    stop = threading.Event()

    def consumer(swap: ModelSwap) -> None:
        x = tf.constant([[2.0]])
        while not stop.is_set():
            try:
                with swap.acquire("linear") as served:
                    y = float(served.signatures["serving_default"](x=x)["y"][0][0])
                    expected = {1: 3.0, 2: 4.0}[served.version]
                    if abs(y - expected) > 1e-6:
                        failures.append(f"v{served.version} answered {y}, expected {expected}")
                    calls[served.version] = calls.get(served.version, 0) + 1
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}")

    with ModelSwap(config) as swap:
        swap.subscribe(on_event)
        swap.wait_until_available("linear", timeout=120)
        worker = threading.Thread(target=consumer, args=(swap,), name="demo-consumer")
        worker.start()
        note("consumer calling linear in a loop")
        export_linear(base / "2", 0.5, 3.0, staging=staging)
        note("v2 renamed into the base path (atomic publish)")
        swap.wait_until_available("linear", version=2, timeout=120)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and calls.get(2, 0) < 100:
            time.sleep(0.01)
        stop.set()
        worker.join()
        note("consumer stopped")
    out(f"modelswap demo in {root} (removed when it ends)\n")
    for at, what in sorted(timeline, key=lambda item: item[0]):
        out(f"{at * 1000:9.1f} ms  {what}")
    total = sum(calls.values())
    out(f"\ncalls: {total} ({', '.join(f'v{v}: {n}' for v, n in sorted(calls.items()))}); "
        f"failed calls: {len(failures)}")
    for failure in failures[:5]:
        out(f"  {failure}")
    return len(failures)
