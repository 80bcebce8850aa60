"""The load pool: worker threads running load jobs, each with `loader.load_timeout`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from modelswap.errors import IncompleteModel, LoadError, LoadTimeout
from modelswap.gate.identity import files_hash
from modelswap.gate.judge import files_signature
from modelswap.load import job as jobs
from modelswap.load.job import Loaded, LoadJob
from modelswap.logger import get_logger
from modelswap.workers import WorkerPool

log = get_logger("modelswap")


def _run(job: LoadJob) -> Loaded | LoadError:
    before = files_signature(job.path, None)
    try:
        return jobs.run_job(job)  # looked up per call: tests and bench/ wrap it
    except LoadError as exc:
        # no traceback: its frames would keep a loaded-but-failed model alive
        error = exc.with_traceback(None)
    except Exception as exc:  # an unexpected failure is still a result
        error = LoadError(f"{type(exc).__name__}: {exc}")
    if files_signature(job.path, None) != before:
        # the files changed under the load (a copy still running): not this version's fault
        return IncompleteModel(f"its files changed during the load ({error}); waiting for "
                               f"the copy to finish")
    if job.identify_failure:
        # failure memory remembers which files failed (read here, not on the coordinator)
        with contextlib.suppress(OSError):
            error.files = files_hash(job.path)
    return error


def _expired(job: LoadJob) -> LoadError:
    log.warning("load_timed_out", model=job.name, version=job.number,
                load_timeout_s=job.load_timeout)
    return LoadTimeout(f"load and warmup did not finish within loader.load_timeout "
                       f"({job.load_timeout:g}s); the loading thread was abandoned")


class LoadPool(WorkerPool[LoadJob, "Loaded | LoadError"]):
    """`threads` workers running `run_job`; each job's result (a `Loaded` or a `LoadError`)
    goes to `done(job, result)` exactly once. A job past its `load_timeout` gets a
    `LoadTimeout` and its worker is abandoned and replaced (see `WorkerPool`)."""

    def __init__(self, threads: int, done: Callable[[LoadJob, Loaded | LoadError], None]) -> None:
        super().__init__("load", threads, _run, done, limit=lambda job: job.load_timeout,
                         expired=_expired)
