"""Logging set-up for the daemon and for host apps that want the YAML `logging:` section:
structlog and stdlib logging to one renderer, JSON lines off a terminal."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import TextIO

import structlog

from modelswap.config import LoggingConfig


def configure_logging(config: LoggingConfig | None = None, stream: TextIO | None = None) -> None:
    """Apply a config's `logging:` section (level, format) to the whole process.

    modelswap never calls this on its own when embedded: the host app owns logging and
    calls it if it wants modelswap's set-up (the daemon does). Without it, modelswap logs
    through the stdlib `logging` module under the `modelswap` logger names, and Python's
    defaults print only warnings and errors, to stderr.
    """
    config = config or LoggingConfig()
    configure(config.level, config.format, stream)


def configure(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging (TensorFlow's, watchdog's) to one renderer."""
    stream = stream or sys.stdout
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TF's C++ chatter: errors only
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer(colors=stream.isatty()) if fmt == "console"
        else structlog.processors.JSONRenderer())
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    *([] if fmt == "console" else [structlog.processors.format_exc_info]),
                    renderer]))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("tensorflow", "absl", "watchdog"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # warnings.warn() output goes through the same renderer (one JSON object per line);
    # watchdog warns each time inotify re-adds a folder it already watches: harmless
    logging.captureWarnings(True)
    warnings.filterwarnings("ignore", message="Callback with id", category=RuntimeWarning)
    # watchdog logs an ERROR when a watch is removed while its thread reads an event (a
    # race inside watchdog on unschedule and stop, with no effect): not an error of ours
    inotify = logging.getLogger("watchdog.observers.inotify")
    if _stop_race not in inotify.filters:
        inotify.addFilter(_stop_race)


def _stop_race(record: logging.LogRecord) -> bool:
    return "called when the thread is inactive" not in record.getMessage()


def quiet_tensorflow() -> None:
    """Import TensorFlow and bring up its CPU devices with fd 2 muted.

    TensorFlow's C++ libraries print start-up lines (absl pre-init notices, CUDA
    probing on a machine without a GPU) straight to file descriptor 2, before any
    Python logging set-up can apply. Python exceptions still propagate. The daemon
    and the CLI call this once at start-up; a library user who imported TensorFlow
    already is not affected.
    """
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf

        tf.config.list_logical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
