"""Fixtures of the fault matrix (helpers in faults/helpers.py; shared ones in tests/conftest.py)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import TIMEOUT, Events, Exports, yaml_for
from daemon import DaemonProcess
from faults.helpers import Scene, unblock_fifo
from modelswap import ModelSwap


@pytest.fixture
def scene(tmp_path: Path, exports: Exports,
          run_swap: Callable[..., tuple[ModelSwap, Events]]) -> Iterator[Callable[..., Scene]]:
    """`scene(extra="", top="", versions=(1,), name="m")`: a model serving the newest of
    `versions`, with a checking consumer running; `extra` is YAML for the model, `top`
    for the whole config."""
    made: list[Scene] = []

    def make(extra: str = "", top: str = "", versions: tuple[int, ...] = (1,),
             name: str = "m") -> Scene:
        base = tmp_path / name
        base.mkdir()
        for version in versions:
            exports.publish(base, version, float(version))
        swap, events = run_swap(yaml_for(base, extra, top, name))
        s = Scene(swap, events, base, exports, name)
        for version in versions:
            s.expect(version, float(version))
        made.append(s)
        if versions:
            swap.wait_until_available(name, version=max(versions), timeout=TIMEOUT)
            s.consumer.start()
            s.serves(max(versions))
        return s

    yield make
    for s in made:
        s.consumer.halt.set()


@pytest.fixture
def fifo() -> Iterator[Callable[[Path], Path]]:
    """`fifo(path)` makes a FIFO at `path`; a reader stuck on it is let go at teardown."""
    made: list[Path] = []

    def make(path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(path)
        made.append(path)
        return path

    yield make
    for path in made:
        unblock_fifo(path)


@pytest.fixture
def daemons() -> Iterator[list[DaemonProcess]]:
    """Daemons a test started: killed at teardown if still running."""
    started: list[DaemonProcess] = []
    yield started
    for d in started:
        d.close()
