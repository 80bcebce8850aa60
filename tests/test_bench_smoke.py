"""Smoke test of the benchmark suite: `python -m bench --quick` runs and prints its table.

Opt-in (it takes about 3 minutes; CI's test budget is 20): run it with
    MODELSWAP_BENCH_SMOKE=1 .venv/bin/pytest tests/test_bench_smoke.py
Benchmarks are not tests: nothing here checks a timing, only that the table is printed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ("1", "2", "3", "4", "5", "6", "7", "8")


@pytest.mark.skipif(
    os.environ.get("MODELSWAP_BENCH_SMOKE") != "1",
    reason="benchmark smoke test takes ~3 min; run with MODELSWAP_BENCH_SMOKE=1 "
           ".venv/bin/pytest tests/test_bench_smoke.py")
def test_quick_bench_prints_a_table() -> None:
    done = subprocess.run([sys.executable, "-m", "bench", "--quick"], cwd=ROOT,
                          capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "machine:" in out and "TensorFlow" in out
    header = next(line for line in out.splitlines() if line.startswith("| figure"))
    for column in ("measured", "target", "baseline", "ratio", "pass/fail"):
        assert column in header
    rows = [line for line in out.splitlines() if line.startswith("| ") and line != header]
    shown = {row[2:].split(" ", 1)[0] for row in rows}
    assert set(FIGURES) <= shown, f"figures missing from the table: {set(FIGURES) - shown}"
    assert not any("ERROR" in row for row in rows), "\n".join(r for r in rows if "ERROR" in r)
