"""The library's own readiness and messages, embedded (no daemon): `ready()` per
`service.require`, `summary(errors=True)`, and `wait_until_available`'s timeout message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import Exports, export_tf1
from modelswap import State


def test_wait_until_available_names_the_version(tmp_path: Path, exports: Exports,
                                                run_swap: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 1.0)
    swap, _ = run_swap(f"models:\n  - name: m\n    base_path: {base}\n")
    assert swap.wait_until_available("m", timeout=60) == 1
    with pytest.raises(TimeoutError) as info:
        swap.wait_until_available("m", version=5, timeout=0.1)
    assert str(info.value).startswith("m version 5 not available after 0.1s; v1 AVAILABLE")


@pytest.mark.parametrize(("require", "ready"), [("none", True), ("any", True),
                                                ("all", False)])
def test_ready_follows_require(tmp_path: Path, exports: Exports, run_swap: Any,
                               require: str, ready: bool) -> None:
    good, broken = tmp_path / "good", tmp_path / "broken"
    good.mkdir()
    exports.publish(good, 1, 1.0)
    export_tf1(broken / "1", {("train",): 0.0})
    swap, events = run_swap(f"models:\n  - {{name: good, base_path: {good}}}\n"
                            f"  - {{name: broken, base_path: {broken}}}\n"
                            f"service: {{require: {require}}}\n")
    swap.wait_until_available("good", timeout=60)
    events.wait_state(1, State.ERROR, model="broken")
    assert swap.ready() is ready
    assert swap.summary() == "1/2 models available; broken ERROR, good v1"
    assert swap.summary(errors=True).startswith(
        "1/2 models available; broken ERROR (v1: TagMismatch: no MetaGraph has tags")
