"""A short run of the soak (bench/soak.py --swaps 1000 is the long one): swaps alternately
atomic and in place under 8 checking consumers; no failed or wrong call, every retired
version freed, no growth of RSS, threads or file descriptors."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parents[2] / "bench" / "soak.py"
SWAPS = int(os.environ.get("MODELSWAP_SOAK_SWAPS", "30"))


def load_soak() -> object:
    spec = importlib.util.spec_from_file_location("modelswap_soak", SOAK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (its dataclasses look their module up)
    spec.loader.exec_module(module)
    return module


def test_soak(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    soak: object = load_soak()
    result = soak.run_soak(SWAPS, consumers=8, work=tmp_path)  # type: ignore[attr-defined]
    soak.report(result)  # type: ignore[attr-defined]
    assert result.swaps == SWAPS
    assert result.calls > SWAPS
    # slack: earlier tests' leftover threads may still open or close an fd meanwhile;
    # a leak per swap would show as SWAPS more
    assert result.verdicts(slack=2) == [], capsys.readouterr().out
