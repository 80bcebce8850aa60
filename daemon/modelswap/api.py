"""`ModelSwap`: the public facade over the source, the coordinator and the hooks."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from modelswap.config import Config, load_config
from modelswap.core.coordinator import Coordinator
from modelswap.core.failures import state_dir
from modelswap.core.loop import HEARTBEAT_INTERVAL
from modelswap.core.policy import aspired_versions
from modelswap.errors import ConfigError, ModelNotFound, VersionNotAvailable
from modelswap.events import ModelEvent, State, VersionStatus
from modelswap.fleet.follow import MirrorRollouts
from modelswap.fleet.rollout import member_id
from modelswap.handles import Served
from modelswap.load import heap
from modelswap.observe.metrics import Metrics
from modelswap.observe.server import StatusServer
from modelswap.usercode import (
    CONSUMER_ERRORS,
    CONSUMERS_ABANDONED,
    HOOK_ERRORS,
    Callback,
    Consumers,
    Dispatcher,
    HookRouter,
    load_user_code,
)
from modelswap.watch.local import Source

if TYPE_CHECKING:
    from modelswap.watch.remote.mirrors import Mirrors, Plan
    from modelswap.watch.remote.state import MirrorStatus

HEALTHY_WITHIN = 5 * HEARTBEAT_INTERVAL  # seconds since the coordinator's last loop


class ModelSwap:
    """Watches the configured models and serves the newest good version of each.

    Thread-safe. `acquire()` never blocks on a load: it returns what is published now.
    Hooks and consumers named in the config are imported here (`ConfigError` if one
    cannot be) and run while the ModelSwap is started. `member`: this member's id in a
    fleet (rollouts, status objects); default `MODELSWAP_MEMBER`, Ray's replica, the host.
    """

    def __init__(self, config: Config, *, member: str | None = None) -> None:
        self.config, self.member = config, member or member_id()
        self._rollouts = MirrorRollouts(self.member)
        code = load_user_code(config)
        self._dispatcher = Dispatcher()
        self._router = HookRouter(code)
        self._dispatcher.subscribe(self._router)
        self._consumers = Consumers(self)
        self._coordinator = Coordinator(config.models, config.loader, config.watch,
                                        emit=self._emit, member=self.member,
                                        state_dir=state_dir(config.service.state_dir),
                                        swap_jitter=config.remote.swap_jitter)
        self._source = Source({m.name: m.base_path for m in config.models},
                              self._coordinator.hint, mode=config.watch.mode,
                              poll_interval=config.watch.poll_interval,
                              rescan_interval=config.watch.rescan_interval,
                              settled=self._coordinator.published.settled)
        self._coordinator.polled = self._source.polled
        self._started = False
        self._mirrors: Mirrors | None = None  # remote base paths, mirrored into the cache
        plan = self._remote_plan(config)
        if plan is not None:
            assert self._mirrors is not None
            self._mirrors.apply(plan)
        # Prometheus metrics on this instance's own registry (`metrics.registry`)
        self.metrics = Metrics(self._coordinator, hook_errors=lambda: HOOK_ERRORS.value,
                               consumer_errors=lambda: CONSUMER_ERRORS.value,
                               consumers_abandoned=lambda: CONSUMERS_ABANDONED.value,
                               models=[m.name for m in config.models],
                               remote=self.remote_status)
        # metrics get their own thread: a slow user hook must not hold up the counters
        self._internal = Dispatcher()
        self._internal.subscribe(self.metrics.observe)
        self._http: StatusServer | None = None

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> ModelSwap:
        """Build from a YAML file (raises `ConfigError` naming file, line and key)."""
        return cls(load_config(path))

    def start(self) -> ModelSwap:
        """Start watching and loading (returns at once; see `wait_until_available`)."""
        if not self._started:
            self._http = self._bind_http(self.config)
            self._started = True
            self._dispatcher.start()
            self._internal.start()
            if self.config.loader.gc_freeze:
                heap.freeze_startup()
            if self._mirrors is not None:  # creates the cache folders the gate lists and
                self._mirrors.start()  # the source watches: before the first gate job
            self._coordinator.start()
            self._source.start()
            self._consumers.start(self._router.code.consumers)
        return self

    def stop(self, timeout: float | None = None) -> list[str]:
        """Stop consumers (waiting up to `timeout`, default `service.stop_timeout`), stop
        watching, retire every version (held ones go on last release).

        Returns the consumers that did not stop in time (they are abandoned).
        """
        if not self._started:
            return []
        self._started = False
        if self._http is not None:
            self._http.stop()
            self._http = None
        late = self._consumers.stop(self.config.service.stop_timeout if timeout is None
                                    else timeout)
        if self._mirrors is not None:
            self._mirrors.stop()
        self._source.stop()
        self._coordinator.stop(timeout=30)
        self._dispatcher.stop()
        self._internal.stop()
        return late

    def reload(self, config: Config, timeout: float = 30.0) -> None:
        """Apply a new config without a restart, whole or not at all.

        Unchanged models keep their loaded versions. On `ConfigError` (hooks that do not
        import, an address that cannot be bound) or `TimeoutError` (the coordinator did not
        take the config within `timeout`), nothing changed: hooks, status server, watchers
        and coordinator all stay on the old config.
        """
        code = load_user_code(config)
        plan = self._remote_plan(config)  # mirrors prepared (not started) before any change
        server = self._http
        if self._started and config.http != self.config.http:
            server = self._bind_http(config)  # bound before anything changes
        try:
            self._apply_to_coordinator(config, timeout)
        except BaseException:
            if server is not self._http and server is not None:
                server.stop()
            if plan is not None and plan.pool is not None:
                plan.pool.shutdown(wait=False)
            raise
        if plan is not None:
            assert self._mirrors is not None
            self._mirrors.apply(plan)
        if server is not self._http:
            if self._http is not None:
                self._http.stop()
            self._http = server
        self._source.configure({m.name: m.base_path for m in config.models},
                               config.watch.mode, config.watch.poll_interval,
                               config.watch.rescan_interval)
        self._router.code = code
        self.config = config
        if self._started:
            self._consumers.start(code.consumers, self.config.service.stop_timeout)

    # remote base paths ------------------------------------------------------------------
    def _remote_plan(self, config: Config) -> Plan | None:
        """The mirrors `config` needs, prepared (raises `ConfigError`); None when no model
        is remote and none was."""
        if self._mirrors is None:
            if not any(m.is_remote for m in config.models):
                return None
            try:
                from modelswap.watch.remote.mirrors import Mirrors
            except ImportError as exc:
                raise ConfigError(f"remote base paths need modelswap's [remote] extra "
                                  f"(pip install 'modelswap[remote]'): {exc}",
                                  file=config.source) from None
            self._mirrors = Mirrors(wanted=self._remote_wanted, keep=self._remote_keep,
                                    changed=self._remote_changed)
        return self._mirrors.prepare(config)

    def _remote_wanted(self, name: str, complete: list[int]) -> frozenset[int]:
        """The complete remote versions the model's policy and labels want, or the fleet
        rollout (mirrored beside the versions) gives this member."""
        model = next((m for m in self.config.models if m.name == name), None)
        if model is None:
            return frozenset()
        pinned = self._rollouts.wanted(name, model.base_path, complete, model.labels)
        if pinned is not None:
            return pinned
        return aspired_versions(complete, model.version_policy, model.labels)

    def _remote_keep(self, name: str) -> frozenset[int] | None:
        """Versions published, loading or retiring: their folders are never pruned. None
        (prune nothing) while the model serves nothing yet."""
        view = self._coordinator.snapshot.get(name)
        if view is None or view.newest is None:
            return None
        busy = {s.version for s in self._coordinator.status_snapshot.get(name, ())
                if s.state in (State.LOADING, State.AVAILABLE, State.UNLOADING)}
        return frozenset(view.versions) | busy

    def _remote_changed(self, name: str, path: Path, renamed_in: bool) -> None:
        self._coordinator.hint(name, path, moved_to=renamed_in)

    def remote_status(self) -> Mapping[str, MirrorStatus]:
        """Each remote model's mirror: store reachable or not, last error (redacted),
        versions listed and downloading, requests made."""
        return self._mirrors.status() if self._mirrors is not None else {}

    def _apply_to_coordinator(self, config: Config, timeout: float) -> None:
        """Hand `config` to the coordinator; on timeout it is never applied."""
        self._coordinator.run_on_thread(lambda: self._coordinator.reconfigure(
            config.models, config.loader, config.watch, config.remote.swap_jitter), timeout,
            "the coordinator did not take the config")

    def _bind_http(self, config: Config) -> StatusServer | None:
        """A status server for `config`, listening (None when `http.listen` is unset)."""
        address = config.http.address
        if address is None:
            return None
        server = StatusServer(address, swap=self, coordinator=self._coordinator,
                              source=self._source, metrics=self.metrics)
        try:
            return server.start()
        except OSError as exc:
            raise ConfigError(f"cannot listen on {config.http.listen}: "
                              f"{exc.strerror or exc}", file=config.source,
                              line=config.line_of("http", "listen"), key="http.listen") from exc

    @property
    def http_address(self) -> tuple[str, int] | None:
        """(host, port) the status server listens on (port 0 resolved), or None."""
        return self._http.address if self._http is not None else None

    def __enter__(self) -> ModelSwap:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def acquire(self, name: str, version: int | None = None, label: str | None = None,
                wait: float = 0.0) -> Served:
        """A handle on a published version: the newest, or `version`, or `label`'s.

        Use it as a context manager (`with swap.acquire(name) as served:`), or call
        `served.release()`. With `wait`, wait up to that many seconds for the version to be
        available (e.g. across the gap of a `swap_policy: resource` swap). Raises
        `ModelNotFound` or `VersionNotAvailable`.
        """
        deadline = None
        while True:
            view = self._coordinator.snapshot.get(name)
            if view is None:
                self._unknown(name)
            if version is not None:
                resident = view.versions.get(version) if view else None
            elif label is not None:
                resident = view.labels.get(label) if view else None
            else:
                resident = view.newest if view else None
            if resident is not None:
                served = resident.acquire()
                if served is not None:
                    return served
                continue  # retired between reading the snapshot and taking the handle
            if wait > 0:
                deadline = deadline or time.monotonic() + wait
                left = deadline - time.monotonic()
                if left > 0:
                    with self._coordinator.changed:
                        if self._coordinator.snapshot.get(name) is view:
                            self._coordinator.changed.wait(left)
                    continue
            what = (f"version {version}" if version is not None
                    else f"label {label!r}" if label is not None else "any version")
            have = sorted(view.versions) if view else []
            raise VersionNotAvailable(f"{name}: {what} is not available (available: {have})")

    def _emit(self, event: ModelEvent) -> None:
        self._internal.emit(event)
        self._dispatcher.emit(event)

    def _unknown(self, name: str) -> None:
        if name not in self._coordinator.model_names:
            known = sorted(self._coordinator.model_names)
            raise ModelNotFound(f"no model {name!r}; known: {known}")

    def wait_until_available(self, name: str, version: int | None = None,
                             timeout: float | None = None) -> int:
        """Block until `name` (or that `version`) is available; return the version number.

        Raises `ModelNotFound`, or `TimeoutError` (with the model's status) after `timeout`.
        """
        self._unknown(name)
        coordinator = self._coordinator

        def ready() -> int | None:
            view = coordinator.snapshot.get(name)
            if view is None or view.newest is None:
                return None
            if version is None:
                return view.newest.version
            return version if version in view.versions else None

        with coordinator.changed:
            if not coordinator.changed.wait_for(lambda: ready() is not None, timeout):
                states = ", ".join(f"v{s.version} {s.state.value}"
                                   + (f" ({s.error_type}: {s.error})" if s.error else "")
                                   for s in self.status().get(name, ()))
                what = f"{name} version {version}" if version is not None else name
                raise TimeoutError(f"{what} not available after {timeout}s"
                                   f"{'; ' + states if states else '; no version found'}")
            found = ready()
        assert found is not None
        return found

    def status(self) -> Mapping[str, tuple[VersionStatus, ...]]:
        """Every model's versions with state, error, path and labels, newest first."""
        current = self._coordinator.status_snapshot
        found = {name: current.get(name, ()) for name in sorted(self._coordinator.model_names)}
        if self._mirrors is not None:  # versions still in the store or downloading
            from modelswap.watch.remote.report import with_remote

            local = {m.name: m.base_path for m in self.config.models}
            for name, mirror in self._mirrors.status().items():
                if name in found and name in local:
                    found[name] = with_remote(found[name], mirror, local[name])
        return found

    def subscribe(self, callback: Callback) -> Callable[[], None]:
        """Call `callback(ModelEvent)` on every state change, on the hook thread, once the
        change is visible to `status()` and `acquire()`. Returns an unsubscribe function."""
        return self._dispatcher.subscribe(callback)

    def ready(self, require: str | None = None) -> bool:
        """Readiness per `service.require` (or `require`): `all` / `any` models have a
        version AVAILABLE; `none`: as soon as started."""
        require = require or self.config.service.require
        if require in ("none", "immediately"):
            return self._started
        if require == "any":
            return any(view.newest is not None for view in self._coordinator.snapshot.values())
        snapshot = self._coordinator.snapshot
        return all(snapshot.get(name) is not None and snapshot[name].newest is not None
                   for name in self._coordinator.model_names)

    def healthy(self) -> bool:
        """The coordinator and the observers are alive and the coordinator made progress
        in the last few seconds."""
        return (self._started and self._coordinator.alive and self._source.alive()
                and time.monotonic() - self._coordinator.heartbeat < HEALTHY_WITHIN)

    def summary(self, errors: bool = False) -> str:
        """One line for systemd's STATUS=: "2/3 models available; m v7, n v2, o ERROR";
        with `errors`, each model not available also names its newest version's error."""
        status = self.status()
        parts, available = [], 0
        for name, versions in status.items():
            view = self._coordinator.snapshot.get(name)
            failed = next((s for s in versions if s.state is State.ERROR), None)
            if view is not None and view.newest is not None:
                available += 1
                parts.append(f"{name} v{view.newest.version}")
                continue
            if failed is not None:
                part = f"{name} ERROR"
            elif any(s.state is State.LOADING for s in versions):
                part = f"{name} loading"
            else:
                part = f"{name} waiting"
            if errors:
                newest = failed or (versions[0] if versions else None)
                part += (f" (v{newest.version}: {newest.error_type}: {newest.error})"
                         if newest is not None and newest.error
                         else f" (v{newest.version} {newest.state.value})" if newest is not None
                         else " (no version folder found)")
            parts.append(part)
        return f"{available}/{len(status)} models available; {', '.join(parts)}"
