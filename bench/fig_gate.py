"""The gate's own cost per GB of variables: `verify: sizes` and `verify: checksums` against
reading the files (`cat > /dev/null`, the floor), on a version copied in place.

    python -m bench.fig_gate [--quick]

Page cache warm in every row (each file is read once before timing), so the floor is the
memory bandwidth of `cat`, and a ratio over it is the gate's CPU cost.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from .common import machine


def export_big(path: Path, megabytes: int) -> Path:
    """A SavedModel whose variables hold about `megabytes` of float32 in 4 shards."""
    import tensorflow as tf

    class Big(tf.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            rows = megabytes * 2**20 // 4 // 1024 // 4
            self.parts = [tf.Variable(tf.random.uniform([rows, 1024])) for _ in range(4)]

        @tf.function(input_signature=[tf.TensorSpec([None, 1024], tf.float32, name="x")])  # type: ignore[untyped-decorator]
        def __call__(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": tf.add_n([tf.reduce_sum(x @ tf.transpose(p[:1])) for p in self.parts])}

    module = Big()
    options = tf.saved_model.SaveOptions(
        experimental_sharding_callback=tf.train.experimental.MaxShardSizePolicy(
            max_shard_size=megabytes * 2**20 // 4 + 4096))
    tf.saved_model.save(module, str(path), options=options)
    return path


def timed(fn: object, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append(time.perf_counter() - started)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="64 MB instead of 512 MB")
    args = parser.parse_args()
    from modelswap.gate.judge import Gate

    megabytes, repeat = (64, 3) if args.quick else (512, 5)
    work = Path(tempfile.mkdtemp(prefix="modelswap-bench-gate-"))
    try:
        source = export_big(work / "export", megabytes)
        version = work / "m" / "1"
        shutil.copytree(source, version, copy_function=shutil.copyfile)  # in place: no rename
        files = [p for p in version.rglob("*") if p.is_file()]
        size = sum(p.stat().st_size for p in files)
        gigabytes = size / 2**30
        subprocess.run(["cat", *map(str, files)], stdout=subprocess.DEVNULL, check=True)

        def cat() -> None:
            subprocess.run(["cat", *map(str, files)], stdout=subprocess.DEVNULL, check=True)

        def gate(verify: str) -> None:
            verdict = Gate(settle=0.0, verify=verify).check(version, frozenset({"serve"}), None)
            assert verdict.ready, verdict

        rows = [("cat > /dev/null (floor)", timed(cat, repeat)),
                ("gate, verify: sizes", timed(lambda: gate("sizes"), repeat)),
                ("gate, verify: checksums", timed(lambda: gate("checksums"), repeat))]
        floor = statistics.median(rows[0][1])
        print(f"machine: {machine()}; load average {os.getloadavg()[0]:.2f}; "
              f"{size / 2**20:.0f} MB in {len(files)} files; {repeat} runs, median (min-max)")
        print(f"{'what':28} {'s/GB':>8} {'MB/s':>8} {'x floor':>8}  spread (ms)")
        for name, times in rows:
            mid = statistics.median(times)
            print(f"{name:28} {mid / gigabytes:8.3f} {size / 2**20 / mid:8.0f} "
                  f"{mid / floor:8.2f}  {min(times) * 1e3:.1f}-{max(times) * 1e3:.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
