"""Figure 6: idle CPU time per minute while watching many model folders, inotify vs poll
mode (and the TF Serving polling emulation's listing cost). Each mode runs in a fresh child
process, so nothing else in the bench process is counted."""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

from .common import INFO, Context, Row, verdict
from .models import publish


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _child(root: Path, n: int, mode: str, seconds: float) -> dict[str, float]:
    from modelswap.service.logs import configure, quiet_tensorflow

    quiet_tensorflow()
    configure(level="warning", fmt="json", stream=sys.stderr)
    bases = {f"m{i:04d}": root / f"m{i:04d}" for i in range(n)}
    out: dict[str, float] = {}
    started = time.perf_counter()
    if mode == "tfs":
        stop = threading.Event()

        def poll() -> None:  # TF Serving emulation: list every base path once a second
            while not stop.is_set():
                for base in bases.values():
                    names = os.listdir(base)
                    max((int(x) for x in names if x.isdigit()), default=0)
                stop.wait(1.0)

        thread = threading.Thread(target=poll, daemon=True)
        thread.start()
        time.sleep(2)
        c0, t0 = _cpu(), time.monotonic()
        time.sleep(seconds)
        c1, t1 = _cpu(), time.monotonic()
        stop.set()
    else:
        from modelswap import ModelSwap

        from .common import make_config

        with ModelSwap(make_config(bases, mode=mode)) as swap:
            for name in bases:
                swap.wait_until_available(name, timeout=600)
            out["all_available_s"] = time.perf_counter() - started
            time.sleep(2)
            c0, t0 = _cpu(), time.monotonic()
            time.sleep(seconds)
            c1, t1 = _cpu(), time.monotonic()
            out["threads"] = float(threading.active_count())
    out["cpu_s_per_min"] = (c1 - c0) / (t1 - t0) * 60
    out["window_s"] = t1 - t0
    return out


def _run_child(root: Path, n: int, mode: str, seconds: float) -> dict[str, float]:
    here = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=here + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "bench.fig_idle", str(root), str(n), mode, str(seconds)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False,
                          timeout=seconds + 900)
    if done.returncode != 0:
        raise RuntimeError(f"idle child ({mode}) failed:\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def figure6(ctx: Context) -> list[Row]:
    n, seconds = ctx.n(100, 1000), ctx.n(8, 60)
    root = ctx.work / "fig6"
    tiny = ctx.exports["tiny"][0]
    for i in range(n):
        base = root / f"m{i:04d}"
        base.mkdir(parents=True)
        publish(tiny, base, 1)
    inotify = _run_child(root, n, "inotify", seconds)
    poll = _run_child(root, n, "poll", seconds)
    tfs = _run_child(root, n, "tfs", seconds)
    ctx.note(f"fig 6: {n} models; all available after {inotify['all_available_s']:.1f} s "
             f"(inotify) / {poll['all_available_s']:.1f} s (poll); threads "
             f"{inotify['threads']:.0f} (inotify) / {poll['threads']:.0f} (poll); "
             f"windows {inotify['window_s']:.0f} s")
    ci, cp, ct = inotify["cpu_s_per_min"], poll["cpu_s_per_min"], tfs["cpu_s_per_min"]
    return [
        Row(f"6 idle CPU, {n} models watched, inotify", f"{ci:.3f} s CPU/min", "report",
            f"poll mode {cp:.2f} s/min", f"{ci / cp:.3f}x" if cp else "—", INFO),
        Row(f"6 idle CPU, {n} models watched, poll mode (1 s)", f"{cp:.2f} s CPU/min",
            "≤ 1.5x emulation", f"TF Serving poll EMULATION {ct:.3f} s/min (lists base "
            "paths only)", f"{cp / ct:.1f}x" if ct else "—", verdict(cp <= 1.5 * ct)),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="idle CPU child process (figure 6)")
    parser.add_argument("root", type=Path)
    parser.add_argument("n", type=int)
    parser.add_argument("mode", choices=("inotify", "poll", "tfs"))
    parser.add_argument("seconds", type=float)
    args = parser.parse_args()
    print(json.dumps(_child(args.root, args.n, args.mode, args.seconds)))
