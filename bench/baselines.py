"""Baselines measured in the same run as modelswap.

* the floor: plain `tf.saved_model.load` of the same folder, then the same first call;
* an EMULATION of TF Serving's version policy (not TF Serving itself): poll the base path
  every 1 s (TF Serving's default `--file_system_poll_wait_seconds=1`) and load the highest
  numeric folder as soon as it appears, with no completeness check.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import inputs_for


@dataclass
class FloorTimes:
    load: float  # seconds in tf.saved_model.load
    first_call: float  # seconds for the first serving_default call


def floor(path: Path) -> FloorTimes:
    """Plain `tf.saved_model.load(path)` and the first `serving_default` call."""
    import tensorflow as tf

    started = time.perf_counter()
    model = tf.saved_model.load(str(path))
    loaded = time.perf_counter()
    signature = model.signatures["serving_default"]
    feed = inputs_for(signature)
    called = time.perf_counter()
    signature(**feed)
    done = time.perf_counter()
    return FloorTimes(loaded - started, done - called)


class TFServingPollEmulation:
    """Emulation of TF Serving's file-system polling policy (latest version, 1 s polls).

    A poll thread lists `base` every `interval` seconds; the moment a numeric folder higher
    than the served one shows up it is loaded (on the poll thread, like TF Serving's source
    → manager handoff with one load thread) and published. No completeness gate.
    """

    def __init__(self, base: Path, interval: float = 1.0) -> None:
        self.base, self.interval = base, interval
        self.served: dict[int, Any] = {}
        self.available_at: dict[int, float] = {}
        self.load_s: dict[int, float] = {}
        self.changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tfs-emulation", daemon=True)

    def __enter__(self) -> TFServingPollEmulation:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _versions(self) -> list[int]:
        try:
            names = os.listdir(self.base)
        except OSError:
            return []
        return sorted(int(n) for n in names if n.isdigit() and int(n) > 0)

    def _run(self) -> None:
        import tensorflow as tf

        while not self._stop.is_set():
            versions = self._versions()
            if versions and versions[-1] not in self.served:
                number = versions[-1]
                started = time.perf_counter()
                model = tf.saved_model.load(str(self.base / str(number)))
                now = time.perf_counter()
                with self.changed:
                    self.served = {number: model}  # latest: 1 (availability: swap at once)
                    self.available_at[number] = now
                    self.load_s[number] = now - started
                    self.changed.notify_all()
            self._stop.wait(self.interval)

    def wait(self, version: int, timeout: float) -> float:
        """Block until `version` is served; its availability time (perf_counter)."""
        with self.changed:
            if not self.changed.wait_for(lambda: version in self.available_at, timeout):
                raise TimeoutError(f"TF Serving emulation: v{version} not loaded in {timeout}s")
            return self.available_at[version]
