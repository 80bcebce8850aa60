"""The coordinator: the one thread that owns all state.

Typed messages arrive on one queue (watcher hints, gate and load results, freed handles);
the coordinator asks the gate pool to look at the disk, runs the pure planner on what is
known, applies the planner's actions, and publishes one immutable snapshot that
`acquire()` reads lock-free. It does no file I/O of its own: a hung mount stalls only that
model's gate job, never this loop, its heartbeat or another model.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from modelswap.config import LoaderConfig, ModelConfig, WatchConfig
from modelswap.core import planner, records
from modelswap.core.failures import FailureMemory
from modelswap.core.headroom import headroom
from modelswap.core.loop import Loop
from modelswap.core.messages import Call, Freed, Hint, LoadDone, Message, Scanned
from modelswap.core.publisher import Publisher
from modelswap.core.reconfigure import reconfigure
from modelswap.core.records import Counters, ModelRecord, VersionRecord
from modelswap.errors import IncompleteModel, LoadError, TransientLoadError
from modelswap.events import ModelEvent, State, VersionStatus
from modelswap.fleet.jitter import swap_delay
from modelswap.gate.judge import Gate
from modelswap.gate.scan import ScanJob, ScanResult, expired, scan
from modelswap.handles import ModelView, Resident
from modelswap.load import heap
from modelswap.load.job import Loaded, LoadJob
from modelswap.load.pool import LoadPool
from modelswap.logger import get_logger
from modelswap.workers import WorkerPool

log = get_logger("modelswap")
SLOW_RETRY = 5.0  # seconds before looking again at a model whose gate job was abandoned


class Coordinator(Loop):
    """Runs the pipeline for a set of models; see DESIGN.md for the rules it keeps."""

    def __init__(self, models: Sequence[ModelConfig], loader: LoaderConfig,
                 watch: WatchConfig, *, emit: Callable[[ModelEvent], None],
                 state_dir: Path | None = None, member: str = "",
                 swap_jitter: float = 0.0) -> None:
        self.loader_config, self.watch_config = loader, watch
        self.member, self.swap_jitter = member, swap_jitter  # fleet: who we are, staggering
        self.counters = Counters()
        super().__init__(lambda: self.watch_config.rescan_interval, self.counters)
        self._memory = FailureMemory(state_dir)
        self.published = Publisher(emit)
        self._models = {m.name: self._new_record(m) for m in models}
        self._removed: dict[str, ModelRecord] = {}  # dropped by a reload, versions still held
        self._dirty: set[str] = set()  # publish these models' views and status
        self._replan: set[str] = set()
        self._stuck: set[str] = set()  # models with a hung gate job: stepped until it returns
        self._rescan_only: set[str] = set()  # models a rescan looks at with no hint pending
        self._retiring: list[tuple[ModelRecord, VersionRecord]] = []
        self._stopped, self.scanned = False, False  # scanned: all planned once from the disk
        self._loads = LoadPool(loader.threads, lambda job, r: self._queue.put(LoadDone(job, r)))
        self._gates: WorkerPool[ScanJob, ScanResult] = WorkerPool(
            "gate", watch.gate_threads, scan, lambda _job, r: self._queue.put(Scanned(r)),
            limit=lambda job: job.timeout, expired=expired)
        self.polled: Callable[[], frozenset[str]] = frozenset  # models the watcher polls

    def _new_record(self, cfg: ModelConfig) -> ModelRecord:
        return ModelRecord(cfg, Gate(self.watch_config.settle, self.watch_config.verify))

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

    def start(self) -> None:
        self._loads.start()
        self._gates.start()
        super().start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the thread, then retire and drop every version (held ones on last release)."""
        super().stop(timeout)
        self._loads.stop()
        self._gates.stop()
        self._memory.close()

    def _rescan(self) -> None:
        self.counters.rescans += 1
        w = self.watch_config  # models polled at least as often as rescanned: see below
        polled = self.polled() if w.poll_interval <= w.rescan_interval else frozenset()
        for name, m in self._models.items():
            if name in polled and m.judged_nothing():
                continue  # only a change of its listing could matter: poll ticks see that
            if not m.scan_wanted:
                self._rescan_only.add(name)
            m.scan_wanted = True

    def _tick(self) -> None:
        self.published.warn_long_held(self.loader_config.handle_warn_after)

    def _handle(self, msg: Message) -> None:
        if isinstance(msg, Hint):
            m = self._models.get(msg.model)
            if m is None:
                return
            self.counters.events += 1
            m.scan_wanted, m.last_hint = True, msg.at
            if msg.moved_to:
                m.renamed.append(msg.path)
            number = records.version_of(m.config.base_path, msg.path)
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
        touched = self._take_touched()
        names = list(self._models) if touched is None else [
            n for n in touched | self._stuck | self._replan if n in self._models]
        for name in names:
            m = self._models[name]
            if m.stuck is not None and m.stuck.finished.is_set():
                m.stuck = None  # the hung job returned: its file system answers again
                self._stuck.discard(name)
            if m.scan_wanted and not m.scanning and m.stuck is None:
                self._submit_scan(m)
            if name in self._replan:
                self._guarded(self._plan, m)
        self._replan.clear()
        self._publish()

    def _on_timer(self, name: str) -> None:
        m = self._models.get(name)
        if m is not None:
            m.scan_wanted = True

    def _set_state(self, m: ModelRecord, v: VersionRecord, state: State, error: str | None = None,
                   error_type: str | None = None) -> None:
        before = (v.state, v.error, v.announced)
        event = v.transition(m.config.name, state, error, error_type)
        if before != (v.state, v.error, v.announced):
            self._dirty.add(m.config.name)
        if event is not None:
            records.log_event(event)
            self.published.record(event)

    # -- gate jobs -----------------------------------------------------------------------
    def _submit_scan(self, m: ModelRecord) -> None:
        remembered = {n: identity for n, identity in self._memory.failed(m.config.name).items()
                      if n not in m.versions}
        self._gates.submit(m.scan_job(remembered, self.watch_config.gate_timeout,
                                      time.monotonic()))

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
            m.stuck = result.job  # no second job into the same hung mount
            self._stuck.add(name)
            m.scan_wanted = True
            m.gate = Gate(self.watch_config.settle, self.watch_config.verify)  # the old: abandoned
            log.warning("gate_job_slow", model=name, path=str(m.config.base_path),
                        gate_timeout_s=self.watch_config.gate_timeout)
            for v in m.versions.values():
                if v.state is State.WAITING:
                    self._set_state(m, v, State.WAITING, result.error, "IncompleteModel")
            self._schedule(time.monotonic() + SLOW_RETRY, name)
            return
        if m.accept(result, time.monotonic()) and rescan_only:
            self.counters.rescan_changes += 1
            log.warning("rescan_found_changes", model=name, hint="events were lost")
        if result.listing is not None and m.follow_rollout(result.rollout, result.listing,
                                                           self.member):
            m.scan_wanted = True  # the rollout names a version that job did not judge
        self._replan.add(name)
        self._dirty.add(name)  # a model with no version yet is published too (as empty)

    # -- planning ------------------------------------------------------------------------
    def _plan(self, m: ModelRecord) -> None:
        cfg, loader, now = m.config, self.loader_config, time.monotonic()
        result = m.scan
        if result is None:
            return
        verdicts = result.verdicts
        room = None  # read /proc and the cgroup only when a load could start beside a version
        if loader.memory_policy != "ignore" and m.could_load_beside():
            room = headroom(loader.memory_limit)
        estimates = m.estimates(loader.memory_factor)
        decided = planner.plan(planner.Situation(
            cfg, tuple(v.as_planned() for v in m.versions.values())
            + tuple(o.as_planned(outgoing=True) for o in m.outgoing),
            result.listing, verdicts, {n: self._memory.error_of(cfg.name, n)
                                       for n in result.remembered}, now, loader.swap_policy,
            loader.memory_policy, estimates, room, m.pin,
            {n: at + swap_delay(self.member, cfg.name, n, self.swap_jitter)
             for n, at in m.first_ready.items()} if self.swap_jitter > 0 else {}))
        m.aspired = decided.aspired
        if decided.default != m.default:
            m.default = decided.default
            self._dirty.add(cfg.name)
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
                    self._retire(m, old)
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
            waited = now - v.waiting_logged
            if action.state is State.WAITING and waited >= records.WAITING_LOG_EVERY:
                v.waiting_logged = now  # progress is a status reason, logged now and then
                log.debug("version_waiting", model=name, version=v.number, reason=action.reason)
        else:  # Load
            v.meta, v.files = action.verdict.meta, action.verdict.signature
            v.token, v.retry_at, v.failed_files, v.durations = v.token + 1, None, None, {}
            if v.ready_at is None:
                v.ready_at = now
            self._set_state(m, v, State.LOADING)
            self._submit_load(m, v)

    def _submit_load(self, m: ModelRecord, v: VersionRecord, reuse: bool = True) -> None:
        self._loads.submit(m.load_job(v, self.loader_config.load_timeout, reuse=reuse,
                                      identify_failure=self._memory.enabled))

    # -- load results and freed versions ---------------------------------------------------
    def _on_loaded(self, job: LoadJob, result: Loaded | LoadError) -> None:
        name, number = job.name, job.number
        m = self._models.get(name)
        v = m.versions.get(number) if m else None
        if m is None or v is None or v.token != job.token or v.state is not State.LOADING:
            return
        self._replan.add(name)
        cfg = self.loader_config
        if isinstance(result, IncompleteModel):  # files changed under the load: a copy
            m.scan_wanted = True
            v.failed_files, v.retry_at = v.files, None  # wait for other files than these
            self._set_state(m, v, State.WAITING, str(result), "IncompleteModel")
            return
        if isinstance(result, LoadError):
            m.scan_wanted = True  # an older version may be needed now: judge it
            error_type = type(result).__name__
            transient = isinstance(result, TransientLoadError)
            delay = v.next_retry(cfg.max_retries * transient, cfg.retry_interval, time.monotonic())
            if delay is not None and v.retry_at is not None:
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
            twin = m.serving(result.reused_from)
            if twin is None:  # retired meanwhile: load it after all
                self._submit_load(m, v, reuse=False)
                return
            model, signatures = twin.model, twin.signatures
            log.info("version_reused", model=name, version=number, same_as=twin.version,
                     identity=result.identity)
        elif result.rss_growth is not None:
            m.growth = max(result.rss_growth, 0)
        self._memory.forget(name, number)
        v.identity, v.retries = result.identity, 0
        v.timed(result.durations, m.first_event.pop(number, None), time.monotonic())
        self.counters.swaps += 1
        v.served = Resident(name, number, v.path, model, signatures, self._released)
        self._set_state(m, v, State.AVAILABLE)

    def _retire(self, m: ModelRecord, v: VersionRecord) -> None:
        """Unpublish `v`; it is unloaded once its last handle is released."""
        self._set_state(m, v, State.UNLOADING)
        self._retiring.append((m, v))

    def _released(self, resident: Resident) -> None:
        if self._stopped:
            resident.drop()
        else:
            self._queue.put(Freed(resident))

    def _on_freed(self, resident: Resident) -> None:
        resident.drop()
        heap.collect_soon()  # the retired model's cycles, on the gc thread (load/heap.py)
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

    # -- reload, publish, shutdown -------------------------------------------------------------
    def reconfigure(self, models: Sequence[ModelConfig], loader: LoaderConfig,
                    watch: WatchConfig, swap_jitter: float = 0.0) -> None:
        """Apply a new config, whole or not at all (call on the coordinator thread, e.g.
        through `call`); see `reconfigure.reconfigure`."""
        change = reconfigure(self._models, models, self._new_record)
        # nothing below raises: the new config is applied whole
        self._models = change.models
        self._removed.update(change.removed)
        for m, v in change.retire:
            self._retire(m, v)
        self._dirty.update(change.changed)
        self._replan.update(change.changed)
        self._touch(None)
        self._loads.resize(loader.threads)
        self._gates.resize(watch.gate_threads)
        self.loader_config, self.watch_config = loader, watch
        self.swap_jitter = swap_jitter
        for m in self._models.values():
            m.gate.settle, m.gate.verify = watch.settle, watch.verify

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
                    self._retire(m, v)
        self._dirty.update(self._models)
        self._publish()
