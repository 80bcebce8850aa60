"""User code the fault tests load into the real daemon (python_path: tests/).

`check`, a consumer: calls model `m` in a loop and checks every answer (version v answers
0.5 * 2 + v, or what $CHECK_EXPECT maps "v" to); keeps a JSON report at $CHECK_REPORT.
`hold_warmup`, a warmup function: blocks while the file $HOLD_FILE exists (writing
$HOLD_FILE.entered first), so a test can kill the daemon in the middle of a load.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any


def _write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def check(swap: Any, stop: threading.Event) -> None:
    import tensorflow as tf

    from modelswap import VersionNotAvailable

    report = Path(os.environ["CHECK_REPORT"])
    expected = {int(k): float(v) for k, v in
                json.loads(os.environ.get("CHECK_EXPECT", "{}")).items()}
    calls: dict[str, int] = {}
    failures: list[str] = []
    served_once = False
    last_write = 0.0
    while not stop.is_set():
        try:
            with swap.acquire("m") as served:
                y = float(served.signatures["serving_default"](
                    x=tf.constant([[2.0]]))["y"][0][0])
                want = expected.get(served.version, 1.0 + served.version)
                if abs(y - want) > 1e-6:
                    failures.append(f"v{served.version} gave {y}, expected {want}")
                calls[str(served.version)] = calls.get(str(served.version), 0) + 1
                served_once = True
        except VersionNotAvailable as exc:
            if served_once:  # nothing served yet at start-up is fine; losing it is not
                failures.append(f"VersionNotAvailable: {exc}")
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {exc}")
        now = time.monotonic()
        if now - last_write > 0.05:
            last_write = now
            _write(report, {"pid": os.getpid(), "calls": calls, "failures": failures[:50]})
        stop.wait(0.002)
    _write(report, {"pid": os.getpid(), "calls": calls, "failures": failures[:50],
                    "stopped": True})


def hold_warmup(model: Any) -> None:
    hold = Path(os.environ["HOLD_FILE"])
    if hold.exists():
        Path(str(hold) + ".entered").write_text(str(os.getpid()))
        while hold.exists():
            time.sleep(0.01)
