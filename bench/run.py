"""Run the modelswap benchmarks and print one table: figure, measured, target, baseline
(measured in the same run), ratio, pass/fail — plus the machine it ran on.

    python -m bench [--quick] [--only 1,3] [--keep] [--out FILE]
    python bench/run.py [--quick]

Benchmarks are not tests: nothing here asserts a timing. See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

if __package__ in (None, ""):  # `python bench/run.py`: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "bench"

from bench.common import FAIL, Context, Row, loadavg, machine

COLUMNS = ("figure", "measured", "target", "baseline (same run)", "ratio", "pass/fail",
           "load avg")


def _figures() -> list[tuple[str, Callable[[Context], list[Row]]]]:
    from bench import fig_acquire, fig_idle, fig_latency, fig_memory, fig_startup, fig_swap

    return [
        ("2", fig_acquire.figure2),
        ("1", fig_swap.figure1),
        ("4,8", fig_swap.figures_4_and_8),
        ("3", lambda ctx: fig_latency.figure3(ctx)[0]),
        ("5", fig_memory.figure5),
        ("7", fig_startup.figure7),
        ("6", fig_idle.figure6),
    ]


def render(rows: Sequence[Row]) -> str:
    """A Markdown pipe table (readable on a terminal, pasteable into the README)."""
    cells = [COLUMNS] + [(r.figure, r.measured, r.target, r.baseline, r.ratio, r.verdict,
                          r.load) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]

    def line(c: Sequence[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)) + " |"

    out = [line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    return "\n".join(out + [line(c) for c in cells[1:]])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer repeats and a small stand-in for ResNet50 (< 3 minutes)")
    parser.add_argument("--only", default="", help="comma-separated figures, e.g. 1,3")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--out", type=Path, help="also write the table and details here")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from modelswap.service.logs import configure, quiet_tensorflow

    quiet_tensorflow()
    configure(level="warning", fmt="json", stream=sys.stderr)
    from bench.models import export_all

    wanted = {f.strip() for f in args.only.split(",") if f.strip()}
    work = Path(tempfile.mkdtemp(prefix="modelswap-bench-"))
    began = time.perf_counter()
    header = (f"modelswap benchmarks ({'--quick' if args.quick else 'full'} run)\n"
              f"machine: {machine()}")
    print(header, flush=True)
    rows: list[Row] = []
    loads: list[float] = []  # the load average every 2 s
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.wait(2.0):
            loads.append(loadavg())

    threading.Thread(target=sample, daemon=True, name="bench-loadavg").start()
    try:
        t = time.perf_counter()
        exports, big_label = export_all(work / "exports", args.quick)
        ctx = Context(args.quick, work, exports, big_label)
        ctx.note(f"exported models in {time.perf_counter() - t:.1f} s (child process); "
                 f"big model: {big_label}")
        for key, figure in _figures():
            if wanted and not wanted & set(key.split(",")):
                continue
            t, load_before = time.perf_counter(), loadavg()
            seen = len(loads)
            print(f"… figure {key}", file=sys.stderr, flush=True)
            try:
                got = figure(ctx)
            except Exception as exc:  # a broken figure is a row, not a lost table
                traceback.print_exc()
                got = [Row(key, f"ERROR {type(exc).__name__}: {exc}"[:160], verdict=FAIL)]
            load_after = loadavg()
            peak = max([load_before, load_after, *loads[seen:]])
            for row in got:
                row.load = f"{load_before:.1f}→{load_after:.1f} (max {peak:.1f})"
            rows += got
            ctx.note(f"figure {key} took {time.perf_counter() - t:.1f} s, load average "
                     f"{load_before:.2f} → {load_after:.2f}")
    finally:
        sampling.set()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    rows.sort(key=lambda r: r.figure.split(" ")[0])
    total = time.perf_counter() - began
    table = render(rows)
    details = "\n".join(f"- {n}" for n in ctx.notes)
    print(f"\n{table}\n\nran in {total:.0f} s; details (median [min-max] n=repeats):\n{details}",
          flush=True)
    if args.out:
        args.out.write_text(f"{header}\n\n{table}\n\nran in {total:.0f} s\n\n{details}\n",
                            encoding="utf-8")
    return 1 if any(r.figure and r.measured.startswith("ERROR") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
