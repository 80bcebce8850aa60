"""`Mirror`: keep one model's remote versions mirrored in `<cache_dir>/<model>/<N>`.

One thread per model lists the base path every `poll_interval` (±jitter), or at once on a
`poke()` (a queue notification: a hint, the listing is the truth). Versions not settled yet
are listed each poll (less often while they stay unchanged) and judged (manifest or content
proof) only when their objects changed; settled ones cost nothing beyond the one listing. The
caller's `wanted(complete versions)` picks what to mirror; downloads run on a bounded pool;
versions neither wanted nor in `keep()` are pruned. Store failures keep the cache as it is
and back off exponentially; a refused credential is logged once, naming the model.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Collection
from concurrent.futures import Executor, Future, ThreadPoolExecutor, wait
from pathlib import Path

from modelswap.logger import get_logger

from .cache import Cache
from .client import Client, Counters
from .config import RemoteConfig
from .download import DownloadError, Plan, download
from .errors import RemoteError, log_store_failure, redact
from .judge import judge
from .listing import list_version, list_versions
from .proof import ShardNeeds, default_shard_needs
from .rollout import RolloutCopy
from .state import MirrorStatus, Record
from .store import Remote, open_remote

__all__ = ["Mirror"]

log = get_logger("modelswap.remote")
_MAX_RECHECK_POLLS = 32  # an unchanged incomplete version is re-listed at least this often


class Mirror:
    """Mirror model `model` from base path `url` into `config.cache_dir/model`.

    `wanted(sorted complete versions)` returns the versions to mirror (the version policy
    stays with the caller); `keep()` the ones never to prune (e.g. the one serving).
    `on_change(version, "mirrored" | "pruned")` is called after the cache changed.
    `pool` may be shared by several mirrors to bound downloads process-wide. The store's
    rollout file is copied beside the versions; `on_rollout(path)` after the copy changed.
    """

    def __init__(self, model: str, url: str, config: RemoteConfig | None = None, *,
                 tags: Collection[str] = ("serve",),
                 wanted: Callable[[list[int]], Collection[int]] = set,
                 keep: Callable[[], Collection[int]] = lambda: (),
                 on_change: Callable[[int, str], object] | None = None,
                 remote: Remote | None = None, pool: Executor | None = None,
                 shard_needs: ShardNeeds = default_shard_needs,
                 retry_initial: float = 1.0, retry_max: float = 300.0,
                 min_free: int | None = None, counters: Counters | None = None,
                 on_rollout: Callable[[Path], object] | None = None) -> None:
        self.model, self.config = model, config or RemoteConfig()
        self.tags = tuple(sorted(tags))
        self.cache = Cache(self.config.cache_dir, model)
        self._rollout = RolloutCopy(model, self.cache.dir, on_rollout)
        self.counters = counters or Counters()
        self._url, self._wanted, self._keep, self._on_change = url, wanted, keep, on_change
        self._shard_needs = shard_needs
        self._retry = (retry_initial, retry_max)
        self._min_free = self.config.min_free if min_free is None else min_free
        self._client: Client | None = None
        self._shown = redact(url)
        self._own_pool = pool is None
        self._pool = pool or ThreadPoolExecutor(self.config.max_downloads,
                                                thread_name_prefix=f"modelswap-dl-{model}")
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._records: dict[int, Record] = {}
        self._mirrored: set[int] = set()
        self._downloading: set[int] = set()
        self._jobs: set[Future[None]] = set()  # this mirror's downloads on the (shared) pool
        self._poke = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._reachable: bool | None = None
        self._error: RemoteError | None = None
        self._failures = 0
        self._last_listed: float | None = None
        self._poll_lock = threading.Lock()
        if remote is not None:
            self._client, self._shown = Client(remote, self.counters), remote.url
        else:
            self._open()  # a URL that can never work raises here; other errors retry later

    def _open(self) -> Client | None:
        if self._client is None:
            try:
                remote = open_remote(self._url, stall_timeout=self.config.stall_timeout)
            except RemoteError as e:
                if e.kind == "invalid":
                    raise
                self._store_failed(e)
                return None
            self._client, self._shown = Client(remote, self.counters), remote.url
        return self._client

    @property
    def source_url(self) -> str:
        """The base path URL as configured (may carry what `redact` hides: never log it)."""
        return self._url

    @property
    def local_dir(self) -> Path:
        """`<cache_dir>/<model>`: the local base path the rest of the pipeline watches."""
        return self.cache.dir

    # lifecycle ------------------------------------------------------------------------
    def prepare(self) -> None:
        """Delete leftovers of an interrupted run; adopt the versions already mirrored."""
        removed = self.cache.prepare()
        if removed:
            log.info("remote_cache_cleaned", model=self.model, removed=removed)
        stale = self.cache.reset_for(self._url)  # a version serving serves on until a successor
        if stale is not None:
            for n in stale:
                self._notify(n, "pruned")
            log.info("remote_cache_reset", model=self.model, url=self._shown, removed=stale)
        with self._lock:
            self._mirrored = set(self.cache.mirrored())
            for n in self._mirrored:
                self._records[n] = Record(n, "mirrored")

    def start(self) -> Mirror:
        self.prepare()
        self._thread = threading.Thread(target=self._run, name=f"modelswap-remote-{self.model}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0, *, wait_for: bool = True) -> None:
        """Stop polling; downloads in flight stop at their next chunk and are discarded.
        `wait_for=False` only asks (stop many mirrors at once, then wait for each)."""
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        if not wait_for:
            return
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            jobs = set(self._jobs)
        wait(jobs, timeout)  # downloads see the stop flag at their next chunk and discard
        if self._own_pool and isinstance(self._pool, ThreadPoolExecutor):
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Mirror:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def poke(self) -> None:
        """Re-list now (a hint: duplicates coalesce into one listing)."""
        with self._cond:
            self._poke = True
            self._cond.notify_all()

    # the loop -------------------------------------------------------------------------
    def _backoff(self, attempts: int) -> float:
        return float(min(self._retry[1], self._retry[0] * 2 ** min(max(0, attempts - 1), 32)))

    def _next_delay(self) -> float:
        if self._failures:
            return self._backoff(self._failures)
        jitter = self.config.poll_jitter
        return self.config.poll_interval * random.uniform(1 - jitter, 1 + jitter)

    def _run(self) -> None:
        full = True  # the first poll, and any poll a hint asked for, re-lists every version
        while not self._stopping.is_set():
            polled = time.monotonic()
            try:
                self.poll_once(full=full)
            except Exception:  # a bug must not end mirroring; the next poll tries again
                log.exception("remote_poll_crashed", model=self.model)
            due = time.monotonic() + self._next_delay()
            with self._cond:
                while not (self._stopping.is_set() or self._poke):
                    # a download retry that falls due after the last poll started
                    retry = min((r.retry_at for r in self._records.values()
                                 if r.state == "failed" and r.plan is not None
                                 and r.retry_at > polled), default=due)
                    now = time.monotonic()
                    if now >= min(due, retry):
                        break
                    self._cond.wait(min(due, retry) - now)
                full, self._poke = self._poke, False

    def poll_once(self, *, full: bool = True) -> bool:
        """List, judge, fetch and prune once; False if the store could not be listed.
        Downloads continue in the background (watch `status()`). Without `full`, versions
        that stayed unchanged while incomplete or failed are re-listed less and less often
        (an abandoned upload must not cost a request every poll)."""
        with self._poll_lock:
            client = self._open()
            if client is None:
                return False
            try:
                listed = list_versions(client)
                self._rollout.sync(client, listed.rollout)  # before `wanted` reads it
                self._judge_all(client, listed.versions, full)
            except RemoteError as e:
                self._store_failed(e)
                return False
            self._store_ok()
            with self._lock:
                for n, names in listed.duplicates.items():
                    if n in self._mirrored | self._downloading:
                        continue  # the copy we have stays; the policy sees n leave the store
                    rec = self._records.setdefault(n, Record(n))
                    rec.state, rec.plan = "failed", None
                    rec.reason = f"version {n} is named twice: {', '.join(names)}"
            self._reconcile(set(listed.versions))
            return True

    def _judge_all(self, client: Client, versions: dict[int, str], full: bool) -> None:
        now = time.monotonic()
        with self._lock:
            for n, rec in list(self._records.items()):
                rec.in_store = n in versions
                if not rec.in_store and n not in self._mirrored | self._downloading:
                    del self._records[n]
            todo = []
            for n, name in sorted(versions.items()):
                known = self._records.get(n)
                if known is None or (known.state in ("incomplete", "failed")
                                     and now >= known.retry_at
                                     and (full or now >= known.recheck_at)):
                    todo.append((n, name))
        for n, name in todo:
            objs = list_version(client, name, n)
            signature = objs.signature()
            with self._lock:
                known = self._records.get(n)
                if known is not None and known.signature == signature and known.plan is None:
                    known.stale += 1  # nothing changed since the last verdict
                    known.recheck_at = now + self.config.poll_interval * min(
                        2 ** (known.stale - 1), _MAX_RECHECK_POLLS)
                    continue
            verdict, plan = judge(client, objs, self.tags, self._shard_needs)
            with self._lock:
                rec = self._records.setdefault(n, Record(n))
                if rec.state in ("mirrored", "downloading"):
                    continue
                if verdict.state == "complete" and rec.state == "failed" and rec.plan:
                    rec.plan = plan  # a retry after a failed download: fresh etags
                else:
                    rec.state = "listed" if verdict.state == "complete" else verdict.state
                    rec.reason, rec.plan = verdict.reason, plan
                rec.signature, rec.stale, rec.recheck_at = signature, 0, 0.0
                if verdict.state != "complete":
                    log.debug("remote_version_waiting", model=self.model, version=n,
                              state=verdict.state, reason=verdict.reason)

    def _reconcile(self, in_store: set[int]) -> None:
        """Start wanted downloads; prune what is neither wanted nor kept."""
        now = time.monotonic()
        with self._lock:
            complete = sorted(n for n, r in self._records.items()
                              if n in in_store and (n in self._mirrored or r.plan is not None))
        try:
            wanted = set(self._wanted(complete))
            keep = set(self._keep())
        except Exception:
            log.exception("remote_policy_failed", model=self.model)
            return
        foreign = self.cache.foreign()
        with self._lock:
            starts: list[Plan] = []
            for n in sorted(wanted - self._mirrored - self._downloading):
                rec = self._records.get(n)
                if rec is None or rec.plan is None or now < rec.retry_at:
                    continue
                if n in foreign:
                    rec.state = "failed"
                    rec.reason = f"{self.cache.dir / str(n)} exists and is not a mirrored copy"
                    continue
                rec.state, rec.bytes_done = "downloading", 0
                self._downloading.add(n)
                starts.append(rec.plan)
            doomed = sorted(self._mirrored - wanted - keep)
        for plan in starts:
            job = self._pool.submit(self._download, plan)
            with self._lock:
                self._jobs.add(job)
            job.add_done_callback(self._job_done)
        for n in doomed:
            self._prune(n)

    def _prune(self, n: int) -> None:
        try:
            self.cache.prune(n)
        except OSError as e:
            log.warning("remote_prune_failed", model=self.model, version=n, error=str(e))
            return
        with self._lock:
            self._mirrored.discard(n)
            rec = self._records.get(n)
            if rec is not None and rec.in_store and rec.plan is not None:
                rec.state, rec.reason = "listed", None
            else:
                self._records.pop(n, None)
        self.counters.add("pruned")
        log.info("remote_pruned", model=self.model, version=n)
        self._notify(n, "pruned")

    def _job_done(self, job: Future[None]) -> None:
        with self._lock:
            self._jobs.discard(job)

    # downloads (pool threads) ---------------------------------------------------------
    def _progress(self, n: int, size: int) -> None:
        with self._lock:
            rec = self._records.get(n)
            if rec is not None:
                rec.bytes_done += size

    def _download(self, plan: Plan) -> None:
        n = plan.version
        client = self._client
        assert client is not None  # a plan exists only after a listing
        try:
            path = download(client, self.cache, plan, stop=self._stopping.is_set,
                            progress=lambda size: self._progress(n, size),
                            min_free=self._min_free)
        except Exception as e:
            err = e if isinstance(e, DownloadError) else DownloadError("store", redact(repr(e)))
            self._download_failed(n, err)
            return
        with self._cond:
            self._downloading.discard(n)
            self._mirrored.add(n)
            rec = self._records.setdefault(n, Record(n))
            rec.state, rec.reason, rec.attempts = "mirrored", None, 0
            self._cond.notify_all()
        self.counters.add("downloads")
        log.info("remote_mirrored", model=self.model, version=n, path=str(path),
                 bytes=plan.total_bytes, files=len(plan.files))
        self._notify(n, "mirrored")

    def _download_failed(self, n: int, err: DownloadError) -> None:
        with self._cond:
            self._downloading.discard(n)
            rec = self._records.get(n)
            if err.kind == "stopped" or rec is None:
                return
            rec.attempts += 1
            rec.state, rec.reason = "failed", f"{err.kind}: {err}"
            rec.retry_at = time.monotonic() + self._backoff(rec.attempts)
            rec.signature = None  # re-list and re-judge before the retry
            self._cond.notify_all()
        self.counters.add("download_failures")
        if err.kind in ("checksum", "changed"):
            self.counters.add("checksum_failures")
        log.warning("remote_download_failed", model=self.model, version=n, kind=err.kind,
                    error=str(err), attempts=rec.attempts)

    def _notify(self, n: int, what: str) -> None:
        if self._on_change is not None:
            try:
                self._on_change(n, what)
            except Exception:
                log.exception("remote_on_change_failed", model=self.model, version=n)

    # store health ---------------------------------------------------------------------
    def _store_failed(self, err: RemoteError) -> None:
        with self._lock:
            first = self._reachable is not False or (
                self._error is not None and self._error.kind != err.kind)
            self._reachable, self._error = False, err
            self._failures += 1
        self.counters.add("list_failures")
        if first:
            log_store_failure(err, self.model, self._shown)

    def _store_ok(self) -> None:
        with self._lock:
            recovered = self._reachable is False
            self._reachable, self._error, self._failures = True, None, 0
            self._last_listed = time.time()
        if recovered:
            log.info("remote_reachable", model=self.model, url=self._shown)

    def status(self) -> MirrorStatus:
        with self._lock:
            versions = tuple(r.snapshot() for _, r in sorted(self._records.items()))
            err = self._error
            return MirrorStatus(self.model, self._shown, self._reachable,
                                str(err) if err else None, err.kind if err else None,
                                self._failures, self._last_listed, versions,
                                self.counters.snapshot())
