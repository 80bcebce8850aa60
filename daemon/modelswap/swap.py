"""`ModelSwap`: the public facade over the source, the coordinator and the hooks."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from types import TracebackType

from .config import Config, load_config
from .errors import ModelNotFound, VersionNotAvailable
from .handles import Served
from .hooks import Callback, Dispatcher
from .manager import Coordinator
from .source import Source
from .states import VersionStatus


class ModelSwap:
    """Watches the configured models and serves the newest good version of each.

    Thread-safe. `acquire()` never blocks on a load: it returns what is published now.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self._dispatcher = Dispatcher()
        self._coordinator = Coordinator(
            config.models, config.loader, settle=config.watch.settle,
            rescan_interval=config.watch.rescan_interval, emit=self._dispatcher.emit)
        self._source = Source({m.name: m.base_path for m in config.models},
                              self._coordinator.hint, mode=config.watch.mode,
                              poll_interval=config.watch.poll_interval)
        self._started = False

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> ModelSwap:
        """Build from a YAML file (raises `ConfigError` naming file, line and key)."""
        return cls(load_config(path))

    def start(self) -> ModelSwap:
        """Start watching and loading (returns at once; see `wait_until_available`)."""
        if not self._started:
            self._started = True
            self._dispatcher.start()
            self._source.start()
            self._coordinator.start(self._source)
        return self

    def stop(self) -> None:
        """Stop watching, retire every version (held ones go on last release)."""
        if self._started:
            self._started = False
            self._source.stop()
            self._coordinator.stop(timeout=30)
            self._dispatcher.stop()

    def __enter__(self) -> ModelSwap:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def acquire(self, name: str, version: int | None = None, label: str | None = None) -> Served:
        """A reference to a published version: the newest, or `version`, or `label`'s.

        Use it as a context manager (`with swap.acquire(name) as served:`), or call
        `served.release()`. Raises `ModelNotFound` or `VersionNotAvailable`.
        """
        while True:
            view = self._coordinator.snapshot.get(name)
            if view is None:
                self._unknown(name)
            if version is not None:
                served = view.versions.get(version) if view else None
            elif label is not None:
                served = view.labels.get(label) if view else None
            else:
                served = view.newest if view else None
            if served is None:
                what = (f"version {version}" if version is not None
                        else f"label {label!r}" if label is not None else "any version")
                have = sorted(view.versions) if view else []
                raise VersionNotAvailable(f"{name}: {what} is not available (available: {have})")
            if served._try_ref():
                return served
            # retired between reading the snapshot and taking the reference: read again

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
                raise TimeoutError(f"{name} not available after {timeout}s"
                                   f"{'; ' + states if states else '; no version found'}")
            found = ready()
        assert found is not None
        return found

    def status(self) -> Mapping[str, tuple[VersionStatus, ...]]:
        """Every model's versions with state, error, path and labels, newest first."""
        current = self._coordinator.status_snapshot
        return {name: current.get(name, ()) for name in sorted(self._coordinator.model_names)}

    def subscribe(self, callback: Callback) -> Callable[[], None]:
        """Call `callback(ModelEvent)` on every state change, on the hook thread, once the
        change is visible to `status()` and `acquire()`. Returns an unsubscribe function."""
        return self._dispatcher.subscribe(callback)
