"""`Mirrors`: one `Mirror` per remote model of a config, one download pool, one queue.

`ModelSwap` owns one. A reload is prepared first (`prepare`: no threads, no I/O; raises
`ConfigError` for a URL no store can be built from) and applied after the coordinator took
the new config (`apply`): a mirror whose URL, tags and remote settings did not change keeps
running (a changed policy or label only pokes it); any other is replaced by a new one on
the same cache folder, which adopts the versions already mirrored: nothing is downloaded
again. Mirrors of removed models stop; their cache folders stay (a later config may want
them back) until a mirror of that name prunes them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from modelswap.config import Config, ModelConfig, RemoteConfig
from modelswap.errors import ConfigError
from modelswap.logger import get_logger

from .client import Counters
from .errors import RemoteError
from .hints import Hints, missing_client
from .mirror import Mirror
from .queues import open_hints
from .state import MirrorStatus

__all__ = ["Mirrors", "queue_error"]

log = get_logger("modelswap.remote")

Wanted = Callable[[str, list[int]], Collection[int]]
"""(model, sorted complete remote versions) → the versions to mirror."""
Keep = Callable[[str], Collection[int] | None]
"""model → versions never to prune (None: prune nothing yet, e.g. nothing serves)."""
Changed = Callable[[str, Path, bool], None]
"""(model, version folder, renamed in) after a version was mirrored or pruned."""


def _key(model: ModelConfig, remote: RemoteConfig) -> tuple[object, ...]:
    """What a running mirror was built from: a change means a new mirror."""
    return (model.source_url, model.tags, remote.model_copy(update={"queue": None}))


def queue_error(config: Config) -> ConfigError | None:
    """An error at `remote.queue` if remote models need a queue whose client library is
    not installed (boto3 for SQS, google-cloud-pubsub for Pub/Sub)."""
    queue = config.remote.queue
    why = missing_client(queue) if queue and any(m.is_remote for m in config.models) else None
    if why is None:
        return None
    return ConfigError(why, file=config.source, line=config.line_of("remote", "queue"),
                       key="remote.queue")


@dataclass
class Plan:
    """A prepared reload: the mirrors to keep, to start and to stop."""

    config: Config
    pool: ThreadPoolExecutor | None
    keep: dict[str, Mirror] = field(default_factory=dict)
    new: dict[str, Mirror] = field(default_factory=dict)
    stop: list[Mirror] = field(default_factory=list)


class Mirrors:
    """The remote mirrors of one `ModelSwap`."""

    def __init__(self, *, wanted: Wanted, keep: Keep, changed: Changed) -> None:
        self._wanted, self._keep, self._changed = wanted, keep, changed
        self._mirrors: dict[str, Mirror] = {}
        self._keys: dict[str, tuple[object, ...]] = {}
        self._counters: dict[str, Counters] = {}  # per model, across mirror restarts
        self._pool: ThreadPoolExecutor | None = None
        self._pool_size = 0
        self._queue: Hints | None = None
        self._queue_url: str | None = None
        self._running = False
        self._lock = threading.Lock()

    def _mirror(self, model: ModelConfig, remote: RemoteConfig, pool: ThreadPoolExecutor,
                config: Config) -> Mirror:
        name = model.name
        assert model.source_url is not None

        def keep_now() -> Collection[int]:
            kept = self._keep(name)
            if kept is None:
                mirror = self._mirrors.get(name)
                return set(mirror.cache.mirrored()) if mirror is not None else ()
            return kept

        counters = self._counters.get(name) or Counters()
        try:
            return Mirror(name, model.source_url, remote, tags=model.tags,
                          wanted=lambda complete: self._wanted(name, complete), keep=keep_now,
                          on_change=lambda n, what: self._changed(
                              name, model.base_path / str(n), what == "mirrored"),
                          pool=pool, counters=counters,
                          on_rollout=lambda path: self._changed(name, path, False))
        except RemoteError as e:
            i = next(i for i, m in enumerate(config.models) if m.name == name)
            raise ConfigError(str(e), file=config.source, line=config.line_of(
                "models", i, "base_path"), key=f"models[{i}].base_path") from None

    def prepare(self, config: Config) -> Plan:
        """The mirrors `config` needs (raises `ConfigError`); nothing runs yet."""
        remote = config.remote
        models = [m for m in config.models if m.is_remote]
        if (error := queue_error(config)) is not None:
            raise error
        resize = self._pool is None or remote.max_downloads != self._pool_size
        pool = ThreadPoolExecutor(remote.max_downloads, thread_name_prefix="modelswap-dl") \
            if resize and models else None
        plan = Plan(config, pool)
        for model in models:
            current = self._mirrors.get(model.name)
            if current is not None and not resize and self._keys[model.name] == _key(
                    model, remote):
                plan.keep[model.name] = current
            else:
                shared = pool or self._pool
                assert shared is not None
                plan.new[model.name] = self._mirror(model, remote, shared, config)
        plan.stop = [m for name, m in self._mirrors.items() if name not in plan.keep]
        return plan

    def apply(self, plan: Plan) -> None:
        """Switch to `plan`'s mirrors (starting them if running) and queue routes."""
        pool = plan.pool or (self._pool if plan.keep or plan.new else None)
        old_pool = self._pool if self._pool is not pool else None
        for mirror in plan.stop:
            mirror.stop(wait_for=False)
        for mirror in plan.stop:
            mirror.stop()
        with self._lock:
            self._pool = pool
            self._pool_size = plan.config.remote.max_downloads if pool is not None else 0
            self._queue_url = plan.config.remote.queue
            self._mirrors = {**plan.keep, **plan.new}
            self._keys = {m.name: _key(m, plan.config.remote)
                          for m in plan.config.models if m.name in self._mirrors}
            for name, mirror in self._mirrors.items():
                self._counters[name] = mirror.counters
        if old_pool is not None:
            old_pool.shutdown(wait=False)
        if self._running:
            for mirror in plan.new.values():
                mirror.start()
            for mirror in plan.keep.values():
                mirror.poke()  # the policy or labels may have changed
        self._configure_queue()

    def _configure_queue(self) -> None:
        queue = self._queue_url if self._running and self._mirrors else None
        if self._queue is not None and queue != self._queue.queue:
            self._queue.stop(timeout=0.0)  # its long poll ends by itself
            self._queue = None
        if queue is None:
            return
        if self._queue is None:
            self._queue = open_hints(queue).start()
            log.info("remote_queue_listening", queue=queue.split("?")[0],
                     kind=self._queue.kind)
        self._queue.set_routes([(m.source_url, m.poke) for m in self._mirrors.values()])

    def configure(self, config: Config) -> None:
        self.apply(self.prepare(config))

    def start(self) -> None:
        self._running = True
        for mirror in self._mirrors.values():
            mirror.start()
        self._configure_queue()

    def stop(self) -> None:
        self._running = False
        self._configure_queue()
        for mirror in self._mirrors.values():
            mirror.stop(wait_for=False)
        for mirror in self._mirrors.values():
            mirror.stop()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool, self._pool_size = None, 0
        self._mirrors, self._keys = {}, {}

    def poke(self, name: str | None = None) -> None:
        """Re-list one model's store (all when `name` is None) now."""
        for model, mirror in list(self._mirrors.items()):
            if name is None or model == name:
                mirror.poke()

    def status(self) -> Mapping[str, MirrorStatus]:
        """Each remote model's mirror: store reachable, last error, versions, requests."""
        return {name: mirror.status() for name, mirror in sorted(self._mirrors.items())}

    def names(self) -> Sequence[str]:
        return sorted(self._mirrors)
