"""The coordinator: per-model state machines, swap policies and the published snapshot.

One thread (the coordinator) owns all state. Filesystem hints, load results and
"last handle released" notices arrive on one queue; after each batch the
coordinator publishes a new immutable snapshot that `acquire()` reads lock-free.
"""

from __future__ import annotations

import heapq
import math
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelswap.config import LoaderConfig, ModelConfig
from modelswap.core.failures import FailureMemory
from modelswap.core.headroom import short_of_memory
from modelswap.core.policy import aspired_versions, wanted_on_disk
from modelswap.core.publisher import Publisher
from modelswap.core.reconfigure import apply
from modelswap.core.records import Counters, ModelRecord, VersionRecord, log_event, version_of
from modelswap.errors import LoadError, TransientLoadError
from modelswap.events import ModelEvent, State, VersionStatus
from modelswap.gate.checks import Gate
from modelswap.gate.identity import files_hash
from modelswap.handles import ModelView, Served
from modelswap.load.job import Loaded, LoadJob
from modelswap.load.pool import LoadPool
from modelswap.logger import get_logger

if TYPE_CHECKING:
    from modelswap.watch.local import Source

log = get_logger("modelswap")
HEARTBEAT_INTERVAL = 1.0  # the loop wakes at least this often, so `heartbeat` stays fresh


class Coordinator:
    """Runs the pipeline for a set of models; see DESIGN.md for the rules it keeps."""

    def __init__(self, models: Sequence[ModelConfig], loader: LoaderConfig, *, settle: float,
                 rescan_interval: float, emit: Callable[[ModelEvent], None],
                 state_dir: Path | None = None) -> None:
        self.loader_config = loader
        self._memory = FailureMemory(state_dir)
        self.rescan_interval = rescan_interval
        self.published = Publisher(emit)
        self._gate = Gate(settle)
        self._models = {m.name: ModelRecord(m) for m in models}
        self._queue: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._timers: list[tuple[float, str]] = []
        self._timer_keys: set[tuple[float, str]] = set()
        self._stopped = False
        self._dirty: set[str] = set()
        self._retiring: list[tuple[ModelRecord, VersionRecord]] = []
        self._watcher: Source | None = None
        self._pool = LoadPool(loader.threads,
                              lambda job, result: self._queue.put(("loaded", job, result)))
        self._thread = threading.Thread(target=self._run, name="modelswap-coordinator",
                                        daemon=True)
        self.heartbeat = time.monotonic()
        self.counters = Counters()
        self._rescan_only: set[str] = set()  # models a rescan looks at with no event pending
        self._removed: dict[str, ModelRecord] = {}  # dropped by a reload, versions still held
        self.scanned = False  # every model looked at once

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
    def served_versions(self) -> tuple[Served, ...]:
        return self.published.served

    @property
    def alive(self) -> bool:
        """The coordinator thread is running (for health checks)."""
        return self._thread.is_alive()

    # -- called from other threads -------------------------------------------------------
    def start(self, watcher: Source | None) -> None:
        self._watcher = watcher
        self._pool.start()
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the thread, then retire and drop every version (held ones on last release)."""
        if self._thread.is_alive():
            self._queue.put(("stop",))
            self._thread.join(timeout)
        self._pool.stop()

    def hint(self, name: str, path: Path, moved_to: bool = False) -> None:
        """Filesystem source: `path` of model `name` changed (`moved_to`: renamed there)."""
        self._queue.put(("fs", name, path, moved_to, time.monotonic()))

    def call(self, fn: Callable[[], None]) -> None:
        """Run `fn` on the coordinator thread."""
        self._queue.put(("call", fn))

    # -- the coordinator thread ------------------------------------------------------------
    def _run(self) -> None:
        self._dirty.update(self._models)
        next_rescan, next_poll = time.monotonic() + self.rescan_interval, math.inf
        running = True
        while running:
            self._process()
            now = time.monotonic()
            watcher = self._watcher
            polled = watcher.polled() if watcher is not None else frozenset()
            interval = watcher.poll_interval if watcher is not None and polled else math.inf
            next_poll = min(next_poll, now + interval)
            deadline = min([next_rescan, now + HEARTBEAT_INTERVAL, next_poll]
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
                try:
                    running = self._handle(msg) and running
                except Exception:  # a bug must not end the one thread that owns the state
                    log.exception("coordinator_error", message=str(msg[0]))
            while self._timers and self._timers[0][0] <= now:
                timer = heapq.heappop(self._timers)
                self._timer_keys.discard(timer)
                self._dirty.add(timer[1])
            if now >= next_poll:  # poll mode: re-list those models ourselves
                next_poll = now + interval
                self._dirty.update(polled & set(self._models))
            if now >= next_rescan:
                next_rescan = now + self.rescan_interval
                self.counters.rescans += 1
                self._rescan_only = set(self._models) - self._dirty
                self._dirty.update(self._models)
        self._shutdown()

    def _handle(self, msg: tuple[Any, ...]) -> bool:
        kind = msg[0]
        if kind == "fs":
            _, name, path, moved_to, at = msg
            if moved_to:
                self._gate.note_renamed(path)
            m = self._models.get(name)
            if m is not None:
                self._dirty.add(name)
                self.counters.events += 1
                number = version_of(m.config.base_path, path)
                if number is not None:
                    m.first_event.setdefault(number, at)
        elif kind == "loaded":
            self._on_loaded(msg[1], msg[2])
        elif kind == "freed":
            self._on_freed(msg[1])
        elif kind == "call":
            msg[1]()
        elif kind == "stop":
            return False
        return True

    def _process(self) -> None:
        dirty, self._dirty = self._dirty, set()
        rescan_only, self._rescan_only = self._rescan_only, set()
        for name in sorted(dirty):
            model = self._models.get(name)
            if model is not None:
                if self._watcher is not None:
                    self._watcher.ensure(name)
                try:
                    self._reconcile(model, rescan=name in rescan_only)
                except Exception:  # keep serving; the next event or rescan tries again
                    log.exception("coordinator_error", model=name)
        self._publish(dirty)
        self.scanned = True

    def _schedule(self, at: float, name: str) -> None:
        if (at, name) not in self._timer_keys:
            self._timer_keys.add((at, name))
            heapq.heappush(self._timers, (at, name))

    def _set_state(self, m: ModelRecord, v: VersionRecord, state: State, error: str | None = None,
                   error_type: str | None = None) -> None:
        event = v.transition(m.config.name, state, error, error_type)
        if event is not None:
            self._dirty.add(m.config.name)
            log_event(event)
            self.published.record(event)

    def _reconcile(self, m: ModelRecord, rescan: bool = False) -> None:
        cfg = m.config
        on_disk, vanished = m.relist()
        if vanished is not None:
            for path in vanished:
                self._gate.forget(path)
            if rescan:
                self.counters.rescan_changes += 1
                log.warning("rescan_found_changes", model=cfg.name, hint="events were lost")
        for number, gone in list(m.versions.items()):
            if on_disk.get(number) != gone.path and gone.state in (State.WAITING, State.ERROR):
                del m.versions[number]
                self._dirty.add(cfg.name)

        now = time.monotonic()
        policy = cfg.version_policy
        labelled = set(cfg.labels.values())
        candidates: set[int] = set()
        for number in wanted_on_disk(on_disk, policy, cfg.labels):
            if (policy.kind == "latest" and len(candidates) >= policy.latest
                    and all(lv > number for lv in labelled)):
                break
            v: VersionRecord | None = m.versions.get(number)
            if v is not None and v.state in (State.LOADING, State.AVAILABLE):
                candidates.add(number)
                continue
            if v is not None and v.state is State.UNLOADING:
                continue
            verdict = self._gate.check(on_disk[number], cfg.tag_set, cfg.marker,
                                       cfg.base_path if cfg.trust else None, cfg.trust)
            if v is None:
                v = m.versions[number] = VersionRecord(number, on_disk[number])
                self._dirty.add(cfg.name)
                if verdict.ready:
                    self._recall_failure(m, v, verdict.signature)
            if verdict.ready:
                v.meta, v.signature = verdict.meta, verdict.signature
                if v.ready_at is None:
                    v.ready_at = now
                if v.state is State.ERROR:
                    if v.failed_signature not in (None, verdict.signature):
                        v.failed_signature, v.retries = None, 0  # new files: a fresh start
                    elif v.failed_signature is not None or (v.retry_at or 0) > now:
                        continue
                candidates.add(number)
            elif verdict.waiting:
                self._set_state(m, v, State.WAITING, verdict.reason, "IncompleteModel")
                if verdict.recheck_at is not None:
                    self._schedule(verdict.recheck_at, cfg.name)
            else:
                assert verdict.error is not None
                v.failed_signature, v.retry_at = verdict.signature, None
                self._set_state(m, v, State.ERROR, verdict.reason, verdict.error.__name__)

        states = {n: v.state for n, v in m.versions.items()}
        available = {n for n, s in states.items() if s is State.AVAILABLE}
        loading = {n for n, s in states.items() if s is State.LOADING}
        while True:
            m.aspired = aspired = aspired_versions(candidates, policy, cfg.labels)
            to_load = aspired - available - loading
            broken = m.contract_breaks(to_load)
            if not broken:
                break
            self._refuse(m, broken, "SignatureMismatch")
            candidates -= set(broken)
        stale = [m.versions[n] for n in sorted(available - aspired)]
        stale += [v for v in m.outgoing if v.state is State.AVAILABLE]
        if stale and aspired:
            if self.loader_config.swap_policy == "resource":
                retire = bool(to_load | loading)
            else:
                retire = bool(aspired & available) and not (aspired & (loading | to_load))
                if not retire and to_load and short_of_memory(
                        cfg.name, {n: m.versions[n].path for n in to_load}, self.loader_config):
                    if self.loader_config.memory_policy == "refuse":
                        self._refuse(m, dict.fromkeys(to_load, "not enough memory to load it "
                                     "beside the served version (memory_policy: refuse)"),
                                     "InsufficientMemory")
                        to_load = frozenset()
                    else:  # fallback: this swap retires the old version first
                        log.info("swap_policy_fallback", model=cfg.name, to="resource",
                                 reason="memory headroom")
                        retire = True
            if retire:
                for v in stale:
                    self._retire(m, v)
        for number in sorted(to_load, reverse=True):
            self._start_load(m, m.versions[number])

    def reconfigure(self, models: Sequence[ModelConfig], loader: LoaderConfig, *,
                    settle: float, rescan_interval: float) -> None:
        """Apply a new config (call on the coordinator thread, e.g. through `call`); see
        `reload.apply`."""
        apply(self, models)
        self._pool.resize(loader.threads)
        self.loader_config = loader
        self._gate.settle = settle
        self.rescan_interval = rescan_interval

    def _start_load(self, m: ModelRecord, v: VersionRecord) -> None:
        v.token, v.retry_at, v.durations = v.token + 1, None, {}
        self._set_state(m, v, State.LOADING)
        self._submit(m, v)

    def _submit(self, m: ModelRecord, v: VersionRecord, reuse: bool = True) -> None:
        cfg = m.config
        twins = tuple((u.identity, u.number) for u in m.records()
                      if u.state is State.AVAILABLE and u.identity is not None)
        self._pool.submit(LoadJob(cfg.name, v.number, v.path, v.token, cfg.tag_set,
                                  tuple(cfg.signatures), cfg.warmup, cfg.warmup_timeout,
                                  reuse=twins if reuse else None,
                                  load_timeout=self.loader_config.load_timeout,
                                  load_options=cfg.load_options))

    def _recall_failure(self, m: ModelRecord, v: VersionRecord,
                        signature: tuple[object, ...]) -> None:
        """A version that failed in an earlier run with these same files stays ERROR until
        they change, so a restart serves a good version first."""
        if not self._memory.has(m.config.name, v.number):
            return
        entry = self._memory.recall(m.config.name, v.number, files_hash(v.path))
        if entry is not None:
            v.failed_signature = signature
            self._set_state(m, v, State.ERROR, f"{entry['error']} (remembered from an earlier "
                            "run; retried when its files change)", entry["error_type"])


    def _refuse(self, m: ModelRecord, numbers: Mapping[int, str], error_type: str) -> None:
        """ERROR without a load: final until the version's files change."""
        for number, reason in numbers.items():
            v = m.versions[number]
            v.failed_signature, v.retry_at = v.signature, None
            self._set_state(m, v, State.ERROR, reason, error_type)

    def _on_loaded(self, job: LoadJob, result: Loaded | LoadError) -> None:
        name, number, token = job.name, job.number, job.token
        m = self._models.get(name)
        v = m.versions.get(number) if m else None
        if m is None or v is None or v.token != token or v.state is not State.LOADING:
            return
        self._dirty.add(name)
        cfg = self.loader_config
        if isinstance(result, LoadError):
            error_type = type(result).__name__
            if isinstance(result, TransientLoadError) and v.retries < cfg.max_retries:
                v.retries += 1
                delay = cfg.retry_interval * 2 ** (v.retries - 1)
                v.retry_at = time.monotonic() + delay
                self._schedule(v.retry_at, name)
                self._set_state(m, v, State.ERROR, f"{result} (retry {v.retries} of "
                                f"{cfg.max_retries} in {delay:g}s)", error_type)
            else:
                v.retry_at = None
                v.failed_signature = v.signature  # the files this load started from
                self._set_state(m, v, State.ERROR, str(result), error_type)
                if self._memory.enabled:
                    self._memory.remember(name, number, files_hash(v.path), error_type,
                                          str(result))
            return
        if number not in m.aspired:
            log.info("load_discarded", model=name, version=number, reason="superseded")
            del m.versions[number]
            return
        model, signatures = result.model, result.signatures
        if result.reused_from is not None:
            twin = next((u for u in m.records()
                         if u.number == result.reused_from and u.served is not None
                         and u.state is State.AVAILABLE), None)
            if twin is None or twin.served is None:  # retired meanwhile: load it after all
                self._submit(m, v, reuse=False)
                return
            model, signatures = twin.served.model, twin.served.signatures
            log.info("version_reused", model=name, version=number, same_as=twin.number,
                     identity=result.identity)
        self._memory.forget(name, number)
        v.identity = result.identity
        v.retries = 0
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
        v.served = Served(name, number, v.path, model, signatures, self._released)
        self._set_state(m, v, State.AVAILABLE)

    def _retire(self, m: ModelRecord, v: VersionRecord) -> None:
        self._set_state(m, v, State.UNLOADING)
        self._retiring.append((m, v))

    def _released(self, served: Served) -> None:
        if self._stopped:
            served.drop()
        else:
            self._queue.put(("freed", served))

    def _on_freed(self, served: Served) -> None:
        served.drop()
        for m in (self._models.get(served.name), self._removed.get(served.name)):
            v = m.find(served) if m is not None else None
            if m is None or v is None:
                continue
            v.served = None
            self._set_state(m, v, State.END)
            if m.versions.get(v.number) is v:
                del m.versions[v.number]
            else:
                m.outgoing.remove(v)
            if m is self._removed.get(served.name) and not (m.versions or m.outgoing):
                del self._removed[served.name]
            return

    def _publish(self, names: set[str]) -> None:
        """Replace the snapshot for changed models, then retire what left it."""
        names |= self._dirty
        self._dirty = set()
        if not names:
            return
        self.published.publish(self._models, names,
                               [*self._models.values(), *self._removed.values()])
        retiring, self._retiring = self._retiring, []
        for _m, v in retiring:
            if v.served is not None and v.served.retire():
                self._on_freed(v.served)
        if self._dirty:
            self._publish(set())

    def _shutdown(self) -> None:
        self._stopped = True
        for m in self._models.values():
            for v in m.records():
                if v.state is State.AVAILABLE:
                    self._retire(m, v)
        self._publish(set(self._models))
