"""Load one verified version: `tf.saved_model.load`, signature checks, typed errors."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import LoadError, SignatureMismatch, TransientLoadError


@dataclass
class Loaded:
    """A loaded version and how long each stage took (seconds)."""

    model: Any
    signatures: Mapping[str, Any]
    durations: dict[str, float] = field(default_factory=dict)


def _transient_types() -> tuple[type[BaseException], ...]:
    import tensorflow as tf

    return (
        OSError,
        tf.errors.NotFoundError,
        tf.errors.UnavailableError,
        tf.errors.AbortedError,
        tf.errors.DeadlineExceededError,
        tf.errors.ResourceExhaustedError,
        tf.errors.DataLossError,
    )


def load_version(path: Path, tags: frozenset[str], signatures: Sequence[str] = ()) -> Loaded:
    """Load the SavedModel at `path` with exactly `tags`; require `signatures`.

    The completeness gate has already parsed saved_model.pb and matched the tags.
    Raises `TransientLoadError` for I/O-like failures (worth a retry),
    `SignatureMismatch` or `LoadError` otherwise.
    """
    import tensorflow as tf

    started = time.perf_counter()
    try:
        model = tf.saved_model.load(str(path), tags=sorted(tags))
    except _transient_types() as exc:
        raise TransientLoadError(f"{type(exc).__name__}: {_first_line(exc)}") from exc
    except Exception as exc:
        raise LoadError(f"{type(exc).__name__}: {_first_line(exc)}") from exc
    loaded_at = time.perf_counter()
    found: Mapping[str, Any] = getattr(model, "signatures", None) or {}
    missing = [name for name in signatures if name not in found]
    if missing:
        raise SignatureMismatch(
            f"missing required signature(s) {missing}; the model has {sorted(found)}"
        )
    return Loaded(model, found, {"load": loaded_at - started,
                                 "validate": time.perf_counter() - loaded_at})


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:500] if text else ""


@dataclass(frozen=True)
class LoadJob:
    """One load to run: which version, with which tags and required signatures."""

    name: str
    number: int
    path: Path
    token: int
    tags: frozenset[str]
    signatures: tuple[str, ...]


class LoadPool:
    """`threads` daemon worker threads running `load_version`; each result (a `Loaded`
    or a `LoadError`) goes to `done(job, result)`. Daemon threads, so a load that never
    returns cannot block the process's exit."""

    def __init__(self, threads: int, done: Callable[[LoadJob, Loaded | LoadError], None]) -> None:
        self._done = done
        self._jobs: queue.SimpleQueue[LoadJob | None] = queue.SimpleQueue()
        self._workers = [threading.Thread(target=self._work, name=f"modelswap-load-{i}",
                                          daemon=True) for i in range(threads)]

    def start(self) -> None:
        for worker in self._workers:
            worker.start()

    def stop(self) -> None:
        """Let the workers exit once their current load returns."""
        for _ in self._workers:
            self._jobs.put(None)

    def submit(self, job: LoadJob) -> None:
        self._jobs.put(job)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            result: Loaded | LoadError
            try:
                result = load_version(job.path, job.tags, job.signatures)
            except LoadError as exc:
                result = exc
            except Exception as exc:  # an unexpected failure is still a result
                result = LoadError(f"{type(exc).__name__}: {exc}")
            self._done(job, result)
            del result
