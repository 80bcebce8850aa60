"""The daemon: run a ModelSwap in the foreground until SIGTERM/SIGINT."""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType

import structlog

from .config import Config
from .swap import ModelSwap

log = structlog.get_logger("modelswap.service")


def run(config: Config) -> int:
    """Serve until SIGTERM or SIGINT (a second SIGINT exits at once); returns the exit code."""
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stopping.is_set() and signum == signal.SIGINT:
            log.warning("forced_exit", signal=signal.Signals(signum).name)
            os._exit(130)
        log.info("stopping", signal=signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    swap = ModelSwap(config)
    log.info("starting", config=config.source, models=[m.name for m in config.models],
             pid=os.getpid())
    swap.start()
    while not stopping.wait(1.0):
        pass
    swap.stop()
    log.info("stopped")
    return 0
