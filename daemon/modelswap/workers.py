"""A small pool of worker threads whose jobs have a time limit (the gate and load pools).

Python cannot stop a thread stuck in C code (a read that blocks on a hung file system, a
TensorFlow op), so a job that runs past its deadline is *abandoned*: its result is reported
as `expired(job)` at the deadline, its worker is renamed "... (abandoned)" and replaced, and
whatever that worker returns later is dropped. Daemon threads, so a job that never returns
cannot block the process's exit.
"""

from __future__ import annotations

import itertools
import math
import queue
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from modelswap.logger import get_logger

log = get_logger("modelswap")

J = TypeVar("J")
R = TypeVar("R")


class WorkerPool(Generic[J, R]):
    """`threads` workers calling `run(job)`; each job's result goes to `done(job, result)`
    exactly once: what `run` returned, or `expired(job)` once `limit(job)` seconds passed
    (a limit of 0 or less: none). `run` must not raise."""

    def __init__(self, name: str, threads: int, run: Callable[[J], R],
                 done: Callable[[J, R], None], *, limit: Callable[[J], float],
                 expired: Callable[[J], R]) -> None:
        self._name = name
        self._run, self._done, self._limit, self._expired = run, done, limit, expired
        self._jobs: queue.SimpleQueue[J | None] = queue.SimpleQueue()
        self._lock = threading.Condition()
        self._size = threads
        self._workers: set[threading.Thread] = set()  # live and not abandoned
        self._busy: dict[threading.Thread, tuple[J, float]] = {}  # → job, deadline
        self._serial = itertools.count()
        self._started = self._stopped = False
        self.abandoned = 0  # workers given up on so far
        self._supervisor = threading.Thread(target=self._supervise, daemon=True,
                                            name=f"modelswap-{name}-supervisor")

    def start(self) -> None:
        with self._lock:
            self._started = True
            self._grow()
        self._supervisor.start()

    def stop(self) -> None:
        """Let the workers exit once their current job returns."""
        with self._lock:
            self._stopped = True
            workers = len(self._workers)
            self._lock.notify_all()
        for _ in range(workers):
            self._jobs.put(None)

    def resize(self, threads: int) -> None:
        """Grow or shrink the pool (a worker leaves once its current job returns)."""
        with self._lock:
            self._size = threads
            excess = len(self._workers) - threads
            self._grow()
        for _ in range(excess):
            self._jobs.put(None)

    def submit(self, job: J) -> None:
        self._jobs.put(job)

    def busy(self) -> list[J]:
        """The jobs running now."""
        with self._lock:
            return [job for job, _ in self._busy.values()]

    def _grow(self) -> None:
        """Start workers up to the wanted count (with the lock held)."""
        while self._started and not self._stopped and len(self._workers) < self._size:
            worker = threading.Thread(target=self._work, daemon=True,
                                      name=f"modelswap-{self._name}-{next(self._serial)}")
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
            limit = self._limit(job)
            deadline = time.monotonic() + limit if limit > 0 else math.inf
            with self._lock:
                self._busy[me] = (job, deadline)
                self._lock.notify_all()
            result = self._run(job)
            with self._lock:
                abandoned = self._busy.pop(me, None) is None
            if abandoned:  # `expired` was already reported for this job
                log.warning("abandoned_job_returned", pool=self._name, thread=me.name,
                            result=type(result).__name__)
                return
            self._done(job, result)
            del result

    def _supervise(self) -> None:
        """Expire overdue jobs: report `expired(job)`, abandon and replace their workers."""
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
            for _worker, job in overdue:
                self._done(job, self._expired(job))
