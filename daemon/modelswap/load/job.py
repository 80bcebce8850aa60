"""Load one verified version: contract check, `tf.saved_model.load`, required signatures,
warmup; typed errors."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from modelswap.config import LoadOptions
from modelswap.errors import LoadError, SignatureMismatch, TransientLoadError
from modelswap.gate.identity import content_identity
from modelswap.load import heap
from modelswap.load.signatures import distinct
from modelswap.load.warmup import run_warmup
from modelswap.logger import get_logger

log = get_logger("modelswap")


@dataclass
class Loaded:
    """A loaded version and how long each stage took (seconds)."""

    model: Any
    signatures: Mapping[str, Any]
    durations: dict[str, float] = field(default_factory=dict)
    identity: str | None = None  # content identity (see identity.py)
    reused_from: int | None = None  # set instead of a model: identical to this loaded version
    rss_growth: int | None = None  # bytes the process's RSS grew by during load and warmup


def rss() -> int:
    """This process's resident set size in bytes."""
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


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


def load_version(path: Path, tags: frozenset[str], signatures: Sequence[str] = (),
                 options: LoadOptions | None = None) -> Loaded:
    """Load the SavedModel at `path` with exactly `tags` and the model's `load_options`
    (as `tf.saved_model.LoadOptions`); require `signatures`.

    The completeness gate has already parsed saved_model.pb and matched the tags.
    Raises `TransientLoadError` for I/O-like failures (worth a retry),
    `SignatureMismatch` or `LoadError` otherwise.
    """
    import tensorflow as tf

    started = time.perf_counter()
    try:
        model = tf.saved_model.load(
            str(path), tags=sorted(tags),
            options=tf.saved_model.LoadOptions(**(options or LoadOptions()).model_dump()))
    except _transient_types() as exc:
        raise TransientLoadError(f"{type(exc).__name__}: {_first_line(exc)}") from exc
    except Exception as exc:
        raise LoadError(f"{type(exc).__name__}: {_first_line(exc)}") from exc
    loaded_at = time.perf_counter()
    # names that are one function share one (warmed) ConcreteFunction: see signatures.py
    found = MappingProxyType(distinct(getattr(model, "signatures", None) or {}))
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
    load_timeout: float = 0.0  # seconds for run_job (load + warmup); 0: none
    identify_failure: bool = False  # on failure, hash the files (for failure memory)
    load_options: LoadOptions | None = None  # the model's `load_options`


def run_job(job: LoadJob) -> Loaded:
    """Load and warm up; the result is publishable. (The signature contract was checked
    by the coordinator from the parsed saved_model.pb, before anything was retired.)

    A version whose files are identical to a loaded one (`job.reuse`: identity → version)
    is not loaded again: the result names that version instead.
    """
    with heap.load_window():
        return _run_job(job)


def _run_job(job: LoadJob) -> Loaded:
    started = time.perf_counter()
    identity = content_identity(job.path) if job.reuse is not None else None
    identified = time.perf_counter() - started
    same = dict(job.reuse or ()).get(identity) if identity is not None else None
    if same is not None:
        return Loaded(None, {}, {"identify": identified}, identity, reused_from=same)
    before = rss()
    loaded = load_version(job.path, job.tags, job.signatures, job.load_options)
    loaded.identity = identity
    if identity is not None:
        loaded.durations["identify"] = identified
    started = time.perf_counter()
    logger = log.bind(model=job.name, version=job.number)
    report = run_warmup(loaded.model, job.path, job.warmup, job.warmup_timeout,
                        iterations=job.warmup_iterations, logger=logger,
                        signatures=loaded.signatures)
    loaded.durations["warmup"] = time.perf_counter() - started
    loaded.rss_growth = rss() - before  # other loads may run at once: an estimate
    if report.kind != "off":
        logger.info("warmed_up", kind=report.kind, calls=report.calls,
                    skipped=len(report.skipped), warmup_s=round(loaded.durations["warmup"], 4))
    return loaded
