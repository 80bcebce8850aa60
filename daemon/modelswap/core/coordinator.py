"""The coordinator: the one thread that owns all state.

Typed messages arrive on one queue (watcher hints, gate and load results, freed handles);
the coordinator asks the gate pool to look at the disk, runs the pure planner on what is
known, applies the planner's actions, and publishes one immutable snapshot that
`acquire()` reads lock-free. It does no file I/O of its own: a hung mount stalls only that
model's gate job, never this loop, its heartbeat or another model.
"""

from __future__ import annotations

import heapq
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from modelswap.config import LoaderConfig, ModelConfig, WatchConfig
from modelswap.core import planner
from modelswap.core.failures import FailureMemory
from modelswap.core.headroom import headroom
from modelswap.core.messages import Call, Freed, Hint, LoadDone, Message, Scanned, Stop
from modelswap.core.publisher import Publisher
from modelswap.core.reconfigure import reconfigure
from modelswap.core.records import Counters, ModelRecord, VersionRecord, log_event, version_of
from modelswap.errors import LoadError, TransientLoadError
from modelswap.events import ModelEvent, State, VersionStatus
from modelswap.gate.checks import Gate
from modelswap.gate.scan import ScanJob, ScanResult, expired, scan
from modelswap.handles import ModelView, Resident
from modelswap.load.job import Loaded, LoadJob
from modelswap.load.pool import LoadPool
from modelswap.logger import get_logger
from modelswap.workers import WorkerPool

log = get_logger("modelswap")
HEARTBEAT_INTERVAL = 1.0  # the loop wakes at least this often, so `heartbeat` stays fresh
SLOW_RETRY = 5.0  # seconds before looking again at a model whose gate job was abandoned


class Coordinator:
    """Runs the pipeline for a set of models; see DESIGN.md for the rules it keeps."""

    def __init__(self, models: Sequence[ModelConfig], loader: LoaderConfig,
                 watch: WatchConfig, *, emit: Callable[[ModelEvent], None],
                 state_dir: Path | None = None) -> None:
        self.loader_config, self.watch_config = loader, watch
        self._memory = FailureMemory(state_dir)
        self.published = Publisher(emit)
        self._models = {m.name: self._new_record(m) for m in models}
        self._removed: dict[str, ModelRecord] = {}  # dropped by a reload, versions still held
        self._queue: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self._timers: list[tuple[float, str]] = []
        self._dirty: set[str] = set()  # publish these models' views and status
        self._replan: set[str] = set()
        self._rescan_only: set[str] = set()  # models a rescan looks at with no hint pending
        self._retiring: list[tuple[ModelRecord, VersionRecord]] = []
        self._stopped = False
        self._loads = LoadPool(loader.threads, lambda job, r: self._queue.put(LoadDone(job, r)))
        self._gates: WorkerPool[ScanJob, ScanResult] = WorkerPool(
            "gate", watch.gate_threads, scan, lambda _job, r: self._queue.put(Scanned(r)),
            limit=lambda job: job.timeout, expired=expired)
        self._thread = threading.Thread(target=self._run, name="modelswap-coordinator",
                                        daemon=True)
        self.heartbeat = time.monotonic()
        self.counters = Counters()
        self.scanned = False  # every model planned once from a look at its disk

    def _new_record(self, cfg: ModelConfig) -> ModelRecord:
        return ModelRecord(cfg, Gate(self.watch_config.settle))

    @property
    def model_names(self) -> frozenset[str]:
        return frozenset(self._models)

    @property
    def snapshot(self) -> Mapping[str, ModelView]:
        """{model: published versions}, read lock-free by `acquire()`."""
        return self.published.snapshot

    @property
    def status_snapshot(self) -> Mapping[str, tuple[VersionStatus, ...]]:
        return self.published.status

    @property
    def changed(self) -> threading.Condition:
        """Notified after each publish."""
        return self.published.changed

    @property
    def served_versions(self) -> tuple[Resident, ...]:
        return self.published.served

    @property
    def alive(self) -> bool:
        """The coordinator thread is running (for health checks)."""
        return self._thread.is_alive()

    @property
    def abandoned_loads(self) -> int:
        return self._loads.abandoned

    # -- called from other threads -------------------------------------------------------
    def start(self) -> None:
        self._loads.start()
        self._gates.start()
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the thread, then retire and drop every version (held ones on last release)."""
        if self._thread.is_alive():
            self._queue.put(Stop())
            self._thread.join(timeout)
        self._loads.stop()
        self._gates.stop()
        self._memory.close()

    def hint(self, name: str, path: Path, moved_to: bool = False) -> None:
        """A watcher saw `path` of model `name` change (`moved_to`: renamed there)."""
        self._queue.put(Hint(name, path, moved_to, time.monotonic()))

    def call(self, fn: Callable[[], None]) -> None:
        """Run `fn` on the coordinator thread."""
        self._queue.put(Call(fn))

    # -- the coordinator thread ------------------------------------------------------------
    def _run(self) -> None:
        next_rescan = time.monotonic() + self.watch_config.rescan_interval
        running = True
        while running:
            self._guarded(self._step)
            now = time.monotonic()
            deadline = min([next_rescan, now + HEARTBEAT_INTERVAL]
                           + [t for t, _ in self._timers[:1]])
            try:
                batch = [self._queue.get(timeout=max(deadline - now, 0.0))]
            except queue.Empty:
                batch = []
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self.heartbeat = now = time.monotonic()
            for msg in batch:
                if isinstance(msg, Stop):
                    running = False
                else:
                    self._guarded(self._handle, msg)
            while self._timers and self._timers[0][0] <= now:
                _, name = heapq.heappop(self._timers)
                self._want_scan(name)
            if now >= next_rescan:
                next_rescan = now + self.watch_config.rescan_interval
                self.counters.rescans += 1
                for name, m in self._models.items():
                    if not m.scan_wanted:
                        self._rescan_only.add(name)
                    m.scan_wanted = True
            self._guarded(self._warn_long_held)
        self._shutdown()

    def _guarded(self, fn: Callable[..., None], *args: object) -> None:
        """Run one step; an exception is logged and counted, and the loop goes on (a bug must
        not end the one thread that owns the state)."""
        try:
            fn(*args)
        except Exception:
            self.counters.step_failures += 1
            log.exception("coordinator_step_failed", step=getattr(fn, "__name__", repr(fn)),
                          message=type(args[0]).__name__ if args else None)

    def _handle(self, msg: Message) -> None:
        if isinstance(msg, Hint):
            m = self._models.get(msg.model)
            if m is None:
                return
            self.counters.events += 1
            m.scan_wanted = True
            if msg.moved_to:
                m.renamed.append(msg.path)
            number = version_of(m.config.base_path, msg.path)
            if number is not None:
                m.first_event.setdefault(number, msg.at)
        elif isinstance(msg, Scanned):
            self._on_scanned(msg.result)
        elif isinstance(msg, LoadDone):
            self._on_loaded(msg.job, msg.result)
        elif isinstance(msg, Freed):
            self._on_freed(msg.resident)
        elif isinstance(msg, Call):
            msg.fn()

    def _step(self) -> None:
        for name, m in self._models.items():
            if m.scan_wanted and not m.scanning:
                self._submit_scan(m)
            if name in self._replan:
                self._guarded(self._plan, m)
        self._replan.clear()
        self._publish()

    def _want_scan(self, name: str) -> None:
        m = self._models.get(name)
        if m is not None:
            m.scan_wanted = True

    def _schedule(self, at: float, name: str) -> None:
        if (at, name) not in self._timers:
            heapq.heappush(self._timers, (at, name))

    def _set_state(self, m: ModelRecord, v: VersionRecord, state: State, error: str | None = None,
                   error_type: str | None = None) -> None:
        before = (v.state, v.error, v.announced)
        event = v.transition(m.config.name, state, error, error_type)
        if before != (v.state, v.error, v.announced):
            self._dirty.add(m.config.name)
        if event is not None:
            log_event(event)
            self.published.record(event)

    # -- gate jobs -----------------------------------------------------------------------
    def _submit_scan(self, m: ModelRecord) -> None:
        m.scan_wanted, m.scanning, m.serial = False, True, m.serial + 1
        versions = m.versions
        remembered = {n: identity for n, identity in self._memory.failed(m.config.name).items()
                      if n not in versions}
        excluded: dict[int, object | None] = {}
        now = time.monotonic()
        for n, v in versions.items():
            if v.state is State.ERROR and v.failed_files is not None:
                excluded[n] = v.failed_files
            elif v.state is State.ERROR and v.retry_at is not None and v.retry_at > now:
                excluded[n] = None
        renamed, m.renamed = tuple(m.renamed), []
        self._gates.submit(ScanJob(
            m.config, m.serial, m.gate, renamed,
            live=frozenset(n for n, v in versions.items() if v.state in planner.LIVE),
            unloading=frozenset(n for n, v in versions.items() if v.state is State.UNLOADING),
            remembered=remembered, excluded=excluded, timeout=self.watch_config.gate_timeout))

    def _on_scanned(self, result: ScanResult) -> None:
        name = result.job.model.name
        m = self._models.get(name)
        if m is None or result.job.serial != m.serial:
            return  # a model removed, or a job of an earlier config
        m.scanning = False
        rescan_only = name in self._rescan_only
        self._rescan_only.discard(name)
        if result.slow:
            self.counters.slow_scans += 1
            m.gate = Gate(self.watch_config.settle)  # the abandoned job may still touch the old
            log.warning("gate_job_slow", model=name, path=str(m.config.base_path),
                        gate_timeout_s=self.watch_config.gate_timeout)
            for v in m.versions.values():
                if v.state is State.WAITING:
                    self._set_state(m, v, State.WAITING, result.error, "IncompleteModel")
            self._schedule(time.monotonic() + SLOW_RETRY, name)
            return
        if result.listing is None:
            if m.base_ok:
                log.warning("base_path_unavailable", model=name, path=str(m.config.base_path),
                            error=result.error, serving=sorted(
                                n for n, v in m.versions.items() if v.state is State.AVAILABLE))
            m.base_ok = False
        else:
            if not m.base_ok:
                log.info("base_path_back", model=name, path=str(m.config.base_path))
            m.base_ok = True
            for text in set(result.warnings) - m.warned:
                log.warning("duplicate_version_folders", model=name, detail=text)
            m.warned = frozenset(result.warnings)
            before = m.scan.listing if m.scan is not None else None
            if rescan_only and before is not None and dict(before) != dict(result.listing):
                self.counters.rescan_changes += 1
                log.warning("rescan_found_changes", model=name, hint="events were lost")
            for number in [n for n in m.first_event if n not in result.listing]:
                del m.first_event[number]
        if result.listing is not None or m.scan is None:
            m.scan = result
        self._replan.add(name)
        self._dirty.add(name)  # a model with no version yet is published too (as empty)

    # -- planning ------------------------------------------------------------------------
    def _plan(self, m: ModelRecord) -> None:
        cfg, loader, now = m.config, self.loader_config, time.monotonic()
        result = m.scan
        if result is None:
            return
        verdicts = result.verdicts
        room = None
        if loader.memory_policy != "ignore" and any(
                v.state is State.AVAILABLE for v in m.records()):
            room = headroom(loader.memory_limit)
        estimates = {n: m.growth if m.growth is not None
                     else int(size * loader.memory_factor) for n, size in result.sizes.items()}
        decided = planner.plan(planner.Situation(
            cfg, tuple(v.as_planned() for v in m.versions.values())
            + tuple(o.as_planned(outgoing=True) for o in m.outgoing),
            result.listing, verdicts, {n: self._memory.error_of(cfg.name, n)
                                       for n in result.remembered}, now, loader.swap_policy,
            loader.memory_policy, estimates, room))
        m.aspired = decided.aspired
        for action in decided.actions:
            self._apply(m, action, now)
        if decided.recheck_at is not None:
            self._schedule(decided.recheck_at, cfg.name)
        self.scanned = self.scanned or all(r.scan is not None for r in self._models.values())

    def _apply(self, m: ModelRecord, action: planner.Action, now: float) -> None:
        name = m.config.name
        if isinstance(action, planner.Forget):
            if m.versions.pop(action.number, None) is not None:
                self._dirty.add(name)
            return
        if isinstance(action, planner.Retire):
            current = m.versions.get(action.number)
            pool = m.outgoing if action.outgoing else [current] if current else []
            for old in pool:
                if old.number == action.number and old.state is State.AVAILABLE:
                    self._set_state(m, old, State.UNLOADING)
                    self._retiring.append((m, old))
            return
        found = m.versions.get(action.number)
        v = found if found is not None and found.path == action.path else VersionRecord(
            action.number, action.path)
        m.versions[action.number] = v
        if isinstance(action, planner.Mark):
            v.failed_files = action.final_for if action.state is State.ERROR else None
            v.retry_at = action.retry_at
            if action.error_type == "InsufficientMemory" != v.error_type:
                log.warning("memory_headroom_short", model=name, version=v.number,
                            detail=action.reason)
            self._set_state(m, v, action.state, action.reason, action.error_type)
        else:  # Load
            v.meta, v.files = action.verdict.meta, action.verdict.signature
            v.token, v.retry_at, v.failed_files, v.durations = v.token + 1, None, None, {}
            if v.ready_at is None:
                v.ready_at = now
            self._set_state(m, v, State.LOADING)
            self._submit_load(m, v)

    def _submit_load(self, m: ModelRecord, v: VersionRecord, reuse: bool = True) -> None:
        cfg = m.config
        twins = tuple((u.identity, u.number) for u in m.records()
                      if u.state is State.AVAILABLE and u.identity is not None)
        self._loads.submit(LoadJob(cfg.name, v.number, v.path, v.token, cfg.tag_set,
                                   tuple(cfg.signatures), cfg.warmup, cfg.warmup_timeout,
                                   reuse=twins if reuse else None,
                                   load_timeout=self.loader_config.load_timeout,
                                   identify_failure=self._memory.enabled,
                                   load_options=cfg.load_options))

    # -- load results and freed versions ---------------------------------------------------
    def _on_loaded(self, job: LoadJob, result: Loaded | LoadError) -> None:
        name, number = job.name, job.number
        m = self._models.get(name)
        v = m.versions.get(number) if m else None
        if m is None or v is None or v.token != job.token or v.state is not State.LOADING:
            return
        self._replan.add(name)
        cfg = self.loader_config
        if isinstance(result, LoadError):
            m.scan_wanted = True  # an older version may be needed now: judge it
            error_type = type(result).__name__
            if isinstance(result, TransientLoadError) and v.retries < cfg.max_retries:
                v.retries += 1
                delay = cfg.retry_interval * 2 ** (v.retries - 1)
                v.retry_at = time.monotonic() + delay
                self._schedule(v.retry_at, name)
                self._set_state(m, v, State.ERROR, f"{result} (retry {v.retries} of "
                                f"{cfg.max_retries} in {delay:g}s)", error_type)
            else:
                v.retry_at, v.failed_files = None, v.files  # final for the files it started from
                self._set_state(m, v, State.ERROR, str(result), error_type)
                if result.files is not None:
                    self._memory.remember(name, number, result.files, error_type, str(result))
            return
        if number not in m.aspired:
            log.info("load_discarded", model=name, version=number, reason="superseded")
            del m.versions[number]
            self._dirty.add(name)
            return
        model, signatures = result.model, result.signatures
        if result.reused_from is not None:
            twin = next((u for u in m.records() if u.number == result.reused_from
                         and u.served is not None and u.state is State.AVAILABLE), None)
            if twin is None or twin.served is None:  # retired meanwhile: load it after all
                self._submit_load(m, v, reuse=False)
                return
            model, signatures = twin.served.model, twin.served.signatures
            log.info("version_reused", model=name, version=number, same_as=twin.number,
                     identity=result.identity)
        elif result.rss_growth is not None:
            m.growth = max(result.rss_growth, 0)
        self._memory.forget(name, number)
        v.identity, v.retries = result.identity, 0
        now = time.monotonic()
        v.durations = dict(result.durations)
        if v.ready_at is not None:
            v.durations["ready_to_available"] = now - v.ready_at
        first_event = m.first_event.pop(number, None)
        if first_event is not None:
            v.durations["event_to_available"] = now - first_event
            if v.ready_at is not None:
                v.durations["gate_wait"] = max(v.ready_at - first_event, 0.0)
        self.counters.swaps += 1
        v.served = Resident(name, number, v.path, model, signatures, self._released)
        self._set_state(m, v, State.AVAILABLE)

    def _released(self, resident: Resident) -> None:
        if self._stopped:
            resident.drop()
        else:
            self._queue.put(Freed(resident))

    def _on_freed(self, resident: Resident) -> None:
        resident.drop()
        for m in (self._models.get(resident.name), self._removed.get(resident.name)):
            v = m.find(resident) if m is not None else None
            if m is None or v is None:
                continue
            v.served = None
            self._set_state(m, v, State.END)
            if m.versions.get(v.number) is v:
                del m.versions[v.number]
            else:
                m.outgoing.remove(v)
            if m is self._removed.get(resident.name) and not (m.versions or m.outgoing):
                del self._removed[resident.name]
            self._replan.add(resident.name)  # a load may wait for this (swap_policy: resource)
            return

    def _warn_long_held(self) -> None:
        limit = self.loader_config.handle_warn_after
        if limit <= 0:
            return
        for resident in self.published.served:
            for age in resident.held_longer_than(limit):
                log.warning("handle_held_long", model=resident.name, version=resident.version,
                            held_s=round(age, 1), handle_warn_after_s=limit,
                            hint="a handle never released keeps its model in memory")

    # -- reload, publish, shutdown -------------------------------------------------------------
    def reconfigure(self, models: Sequence[ModelConfig], loader: LoaderConfig,
                    watch: WatchConfig) -> None:
        """Apply a new config, whole or not at all (call on the coordinator thread, e.g.
        through `call`); see `reconfigure.reconfigure`."""
        change = reconfigure(self._models, models, self._new_record)
        # nothing below raises: the new config is applied whole
        self._models = change.models
        self._removed.update(change.removed)
        for m, v in change.retire:
            self._set_state(m, v, State.UNLOADING)
            self._retiring.append((m, v))
        self._dirty.update(change.changed)
        self._replan.update(change.changed)
        self._loads.resize(loader.threads)
        self._gates.resize(watch.gate_threads)
        self.loader_config, self.watch_config = loader, watch
        for m in self._models.values():
            m.gate.settle = watch.settle

    def _publish(self) -> None:
        """Replace the snapshot for changed models, then retire what left it."""
        names, self._dirty = self._dirty, set()
        if names or self.published.pending:
            self.published.publish(self._models, names,
                                   [*self._models.values(), *self._removed.values()])
        retiring, self._retiring = self._retiring, []
        for _m, v in retiring:
            if v.served is not None and v.served.retire():
                self._on_freed(v.served)
        if self._dirty:
            self._publish()

    def _shutdown(self) -> None:
        self._stopped = True
        for m in self._models.values():
            for v in m.records():
                if v.state is State.AVAILABLE:
                    self._set_state(m, v, State.UNLOADING)
                    self._retiring.append((m, v))
        self._dirty.update(self._models)
        self._publish()
