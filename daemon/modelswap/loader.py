"""Load one verified version: contract check, `tf.saved_model.load`, required signatures,
warmup; typed errors."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from .errors import LoadError, SignatureMismatch, TransientLoadError
from .identity import content_identity
from .warmup import run_warmup

log = structlog.get_logger("modelswap")


@dataclass
class Loaded:
    """A loaded version and how long each stage took (seconds)."""

    model: Any
    signatures: Mapping[str, Any]
    durations: dict[str, float] = field(default_factory=dict)
    identity: str | None = None  # content identity (see identity.py)
    reused_from: int | None = None  # set instead of a model: identical to this loaded version


def _transient_types() -> tuple[type[BaseException], ...]:
    import tensorflow as tf

    return (
        OSError,
        tf.errors.NotFoundError,
        tf.errors.UnavailableError,
        tf.errors.AbortedError,
        tf.errors.DeadlineExceededError,
        tf.errors.ResourceExhaustedError,
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
    """One load to run: which version, with which tags and required signatures, and how
    to warm it up."""

    name: str
    number: int
    path: Path
    token: int
    tags: frozenset[str]
    signatures: tuple[str, ...]
    warmup: str = "auto"
    warmup_timeout: float = 60.0
    warmup_iterations: int = 1  # replays of each record of a TF Serving warmup file
    reuse: tuple[tuple[str, int], ...] | None = ()  # loaded versions' identities; None: off


def run_job(job: LoadJob) -> Loaded:
    """Load and warm up; the result is publishable. (The signature contract was checked
    by the coordinator from the parsed saved_model.pb, before anything was retired.)

    A version whose files are identical to a loaded one (`job.reuse`: identity → version)
    is not loaded again: the result names that version instead.
    """
    started = time.perf_counter()
    identity = content_identity(job.path) if job.reuse is not None else None
    identified = time.perf_counter() - started
    same = dict(job.reuse or ()).get(identity) if identity is not None else None
    if same is not None:
        return Loaded(None, {}, {"identify": identified}, identity, reused_from=same)
    loaded = load_version(job.path, job.tags, job.signatures)
    loaded.identity = identity
    if identity is not None:
        loaded.durations["identify"] = identified
    started = time.perf_counter()
    logger = log.bind(model=job.name, version=job.number)
    report = run_warmup(loaded.model, job.path, job.warmup, job.warmup_timeout,
                        iterations=job.warmup_iterations, logger=logger)
    loaded.durations["warmup"] = time.perf_counter() - started
    if report.kind != "off":
        logger.info("warmed_up", kind=report.kind, calls=report.calls,
                    skipped=len(report.skipped), warmup_s=round(loaded.durations["warmup"], 4))
    return loaded


class LoadPool:
    """`threads` daemon worker threads running `run_job`; each result (a `Loaded`
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

    def resize(self, threads: int) -> None:
        """Grow or shrink the pool (a worker leaves once its current load returns)."""
        self._workers = [w for w in self._workers if w.is_alive()] or self._workers
        while len(self._workers) > threads:
            self._jobs.put(None)
            self._workers.pop()
        while len(self._workers) < threads:
            worker = threading.Thread(target=self._work, daemon=True,
                                      name=f"modelswap-load-{len(self._workers)}")
            self._workers.append(worker)
            worker.start()

    def submit(self, job: LoadJob) -> None:
        self._jobs.put(job)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            result: Loaded | LoadError
            try:
                result = run_job(job)
            except LoadError as exc:
                # no traceback: its frames would keep a loaded-but-failed model alive
                result = exc.with_traceback(None)
            except Exception as exc:  # an unexpected failure is still a result
                result = LoadError(f"{type(exc).__name__}: {exc}")
            self._done(job, result)
            del result
