"""The load pool: worker threads running load jobs, with a time limit per job."""

from __future__ import annotations

import itertools
import math
import queue
import threading
import time
from collections.abc import Callable

from modelswap.errors import LoadError, LoadTimeout
from modelswap.load import job as jobs
from modelswap.load.job import Loaded, LoadJob
from modelswap.logger import get_logger

log = get_logger("modelswap")


class LoadPool:
    """`threads` daemon worker threads running `run_job`; each job's result (a `Loaded` or
    a `LoadError`) goes to `done(job, result)` exactly once.

    A job that runs past its `load_timeout` gets a `LoadTimeout` result at its deadline,
    from a small supervisor thread. Python cannot stop a thread stuck in TensorFlow's C++
    (a read that blocks on a hung file system, say), so that worker is abandoned: renamed
    "... (abandoned)" and replaced by a fresh one, so `threads` workers keep taking jobs.
    Whatever an abandoned worker returns later is dropped, and it exits. Daemon threads,
    so a load that never returns cannot block the process's exit.
    """

    def __init__(self, threads: int, done: Callable[[LoadJob, Loaded | LoadError], None]) -> None:
        self._done = done
        self._jobs: queue.SimpleQueue[LoadJob | None] = queue.SimpleQueue()
        self._lock = threading.Condition()
        self._size = threads
        self._workers: set[threading.Thread] = set()  # live and not abandoned
        self._busy: dict[threading.Thread, tuple[LoadJob, float]] = {}  # → job, deadline
        self._serial = itertools.count()
        self._started = self._stopped = False
        self.abandoned = 0  # workers given up on so far
        self._supervisor = threading.Thread(target=self._supervise, daemon=True,
                                            name="modelswap-load-supervisor")

    def start(self) -> None:
        with self._lock:
            self._started = True
            self._grow()
        self._supervisor.start()

    def stop(self) -> None:
        """Let the workers exit once their current load returns."""
        with self._lock:
            self._stopped = True
            workers = len(self._workers)
            self._lock.notify_all()
        for _ in range(workers):
            self._jobs.put(None)

    def resize(self, threads: int) -> None:
        """Grow or shrink the pool (a worker leaves once its current load returns)."""
        with self._lock:
            self._size = threads
            excess = len(self._workers) - threads
            self._grow()
        for _ in range(excess):
            self._jobs.put(None)

    def submit(self, job: LoadJob) -> None:
        self._jobs.put(job)

    def _grow(self) -> None:
        """Start workers up to the wanted count (with the lock held)."""
        while self._started and not self._stopped and len(self._workers) < self._size:
            worker = threading.Thread(target=self._work, daemon=True,
                                      name=f"modelswap-load-{next(self._serial)}")
            self._workers.add(worker)
            worker.start()

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            job = self._jobs.get()
            if job is None:  # stop, or a shrink: leave if the pool has a worker too many
                with self._lock:
                    if self._stopped or len(self._workers) > self._size:
                        self._workers.discard(me)
                        return
                continue
            deadline = time.monotonic() + job.load_timeout if job.load_timeout > 0 else math.inf
            with self._lock:
                self._busy[me] = (job, deadline)
                self._lock.notify_all()
            result = self._run(job)
            with self._lock:
                abandoned = self._busy.pop(me, None) is None
            if abandoned:  # the supervisor already reported a LoadTimeout for this job
                log.warning("abandoned_load_returned", model=job.name, version=job.number,
                            thread=me.name, result=type(result).__name__)
                return
            self._done(job, result)
            del result

    @staticmethod
    def _run(job: LoadJob) -> Loaded | LoadError:
        try:
            return jobs.run_job(job)  # looked up per call: bench/ wraps it
        except LoadError as exc:
            # no traceback: its frames would keep a loaded-but-failed model alive
            return exc.with_traceback(None)
        except Exception as exc:  # an unexpected failure is still a result
            return LoadError(f"{type(exc).__name__}: {exc}")

    def _supervise(self) -> None:
        """Time out overdue jobs: report `LoadTimeout`, abandon and replace their workers."""
        while True:
            with self._lock:
                while True:
                    if self._stopped:
                        return
                    now = time.monotonic()
                    overdue = [(worker, job) for worker, (job, deadline) in self._busy.items()
                               if deadline <= now]
                    if overdue:
                        break
                    nearest = min((deadline for _, deadline in self._busy.values()),
                                  default=math.inf)
                    self._lock.wait(None if nearest == math.inf
                                    else min(nearest - now, threading.TIMEOUT_MAX))
                for worker, _job in overdue:
                    del self._busy[worker]
                    self._workers.discard(worker)
                    worker.name += " (abandoned)"
                    self.abandoned += 1
                self._grow()
            for worker, job in overdue:
                log.warning("load_timed_out", model=job.name, version=job.number,
                            load_timeout_s=job.load_timeout, thread=worker.name)
                self._done(job, LoadTimeout(
                    f"load and warmup did not finish within loader.load_timeout "
                    f"({job.load_timeout:g}s); the loading thread was abandoned"))
