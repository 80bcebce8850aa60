"""Ray Serve replicas that each embed a `ModelSwap` built from the same config (extra `[ray]`).

Subclass `SwapDeployment` and decorate it with `@serve.deployment`; the user's code stays
plain Ray Serve code that calls `self.swap.acquire(...)`::

    from ray import serve
    from modelswap.ray import SwapDeployment

    @serve.deployment(num_replicas=3)
    class Ranker(SwapDeployment):
        def __call__(self, x: float) -> dict:
            with self.swap.acquire("ranker") as served:
                ...

    serve.run(Ranker.bind("/etc/modelswap/ranker.yaml"))

Each replica starts its swap in `__init__` and returns once the models `service.require`
names serve a version (`service.start_timeout`, else Serve restarts it); Serve's
`check_health` fails while the swap is unhealthy; a new `user_config` (a config mapping,
`{"config_yaml": TEXT}` or `{"config_path": FILE}`) is applied by `ModelSwap.reload`:
no replica restart, unchanged models keep their loaded versions. Remote models are mirrored
into a cache folder of the replica's own (`<remote.cache_dir>/replicas/<member>`): replicas
sharing a node never download into the same folders; a replica stopping removes its folder,
and one starting removes those of replicas that died (fleet/lease.py).
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import yaml

from modelswap.api import ModelSwap
from modelswap.config import Config, load_config, parse_config
from modelswap.fleet import lease
from modelswap.fleet.rollout import member_id
from modelswap.fleet.status import FleetReporter
from modelswap.logger import get_logger

__all__ = ["SwapDeployment", "config_from", "replica_config", "wait_ready"]

log = get_logger("modelswap.ray")
ConfigSource = Config | str | os.PathLike[str] | Mapping[str, Any]


def config_from(source: ConfigSource) -> Config:
    """A `Config` from a `Config`, a YAML file path, YAML text, or a config mapping; the
    mapping may instead hold `config_yaml` (text) or `config_path` (a file). Relative paths
    in text or a mapping resolve against the replica's working directory."""
    if isinstance(source, Config):
        return source
    if isinstance(source, Mapping):
        if set(source) == {"config_yaml"}:
            return parse_config(str(source["config_yaml"]), source="user_config")
        if set(source) == {"config_path"}:
            return load_config(str(source["config_path"]))
        return parse_config(yaml.safe_dump(dict(source), sort_keys=False),
                            source="user_config")
    text = os.fspath(source)
    if isinstance(source, os.PathLike) or ("\n" not in text and Path(text).is_file()):
        return load_config(text)
    return parse_config(text, source="<config>")


def replica_config(config: Config, member: str) -> Config:
    """`config` with its remote cache in `<remote.cache_dir>/replicas/<member>` (unchanged
    without remote models): each replica mirrors into folders of its own."""
    if not any(m.is_remote for m in config.models):
        return config
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", member).lstrip(".")[:200] or "_"
    cache = config.remote.cache_dir / "replicas" / safe
    models = [m.model_copy(update={"base_path": cache / m.base_path.name}) if m.is_remote
              else m for m in config.models]
    return config.model_copy(update={
        "remote": config.remote.model_copy(update={"cache_dir": cache}), "models": models})


def wait_ready(swap: ModelSwap, timeout: float | None) -> None:
    """Block until `swap.ready()` (per `service.require`); `TimeoutError` naming every
    model's state after `timeout` seconds (None or 0: wait forever)."""
    changed = threading.Event()
    unsubscribe = swap.subscribe(lambda _event: changed.set())
    deadline = time.monotonic() + timeout if timeout else None
    try:
        while not swap.ready():
            left = 1.0 if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"modelswap not ready after {timeout}s: "
                                   f"{swap.summary(errors=True)}")
            changed.wait(min(left, 1.0))  # also re-check: readiness may change silently
            changed.clear()
    finally:
        unsubscribe()


class SwapDeployment:
    """Base class of a Ray Serve deployment whose replicas each embed a `ModelSwap`.

    `config`: see `config_from`; None waits for Serve's first `reconfigure(user_config)`.
    `fleet_status`: write this replica's status object (`_fleet/<member>.json`) into each
    model's base path, for `modelswap fleet status`. `member`: default `member_id()` (the
    replica's id). `ready_timeout`: default `service.start_timeout`.
    """

    def __init__(self, config: ConfigSource | None = None, *, fleet_status: bool = False,
                 member: str | None = None, ready_timeout: float | None = None) -> None:
        self.member = member or member_id()
        self._fleet_status = fleet_status
        self._ready_timeout = ready_timeout
        self._swap: ModelSwap | None = None
        self._reporter: FleetReporter | None = None
        self._cache: Path | None = None  # this replica's own remote cache folder
        self._lease: IO[bytes] | None = None  # held while this replica uses `_cache`
        if config is not None:
            self._start(replica_config(config_from(config), self.member))

    @property
    def swap(self) -> ModelSwap:
        """This replica's `ModelSwap` (started, ready per `service.require`)."""
        if self._swap is None:
            raise RuntimeError("modelswap has no config yet: pass one to __init__ or set "
                               "the deployment's user_config")
        return self._swap

    def _start(self, config: Config) -> None:
        self._own_cache(config)  # removed by `shutdown`, also after a failed start
        swap = ModelSwap(config, member=self.member).start()
        try:
            timeout = self._ready_timeout
            wait_ready(swap, config.service.start_timeout if timeout is None else timeout)
            if self._fleet_status:
                self._reporter = FleetReporter(swap, self.member).start()
        except BaseException:
            swap.stop()
            raise
        self._swap = swap
        log.info("ray_replica_ready", member=self.member, summary=swap.summary())

    def reconfigure(self, user_config: Mapping[str, Any]) -> None:
        """Serve's in-place update: apply the new config as a reload (no restart). A config
        that does not validate raises `ConfigError`, and the replica keeps the old one."""
        config = replica_config(config_from(user_config), self.member)
        if self._swap is None:
            self._start(config)
            return
        before = {m.name: m.source_url or m.base_path for m in self._swap.config.models}
        self._swap.reload(config)
        self._own_cache(config)
        after = {m.name: m.source_url or m.base_path for m in config.models}
        if self._fleet_status and after != before:
            if self._reporter is not None:
                self._reporter.stop()
            self._reporter = FleetReporter(self._swap, self.member).start()
        log.info("ray_replica_reconfigured", member=self.member,
                 models=sorted(after))

    def _own_cache(self, config: Config) -> None:
        """Hold the lease on this replica's cache folder and remove the folders of replicas
        that died without `shutdown` (fleet/lease.py)."""
        if any(m.is_remote for m in config.models) and self._cache != config.remote.cache_dir:
            self._cache = config.remote.cache_dir
            if self._lease is not None:
                self._lease.close()
            self._lease = lease.claim(self._cache)
            lease.sweep(self._cache.parent, keep=self._cache)

    def check_health(self) -> None:
        """Serve's health check: raises unless the swap is healthy."""
        swap = self._swap
        if swap is None:
            raise RuntimeError("modelswap has no config yet")
        if not swap.healthy():
            raise RuntimeError(f"modelswap unhealthy: {swap.summary(errors=True)}")

    def shutdown(self) -> None:
        """Stop the reporter (removing this member's status objects) and the swap."""
        reporter, self._reporter = getattr(self, "_reporter", None), None
        if reporter is not None:
            reporter.stop()
        swap, self._swap = getattr(self, "_swap", None), None
        if swap is not None:
            swap.stop()
        cache, self._cache = getattr(self, "_cache", None), None
        if cache is not None:  # this replica's id is never used again
            shutil.rmtree(cache, ignore_errors=True)
        held, self._lease = getattr(self, "_lease", None), None
        if held is not None:
            held.close()

    def __del__(self) -> None:  # Serve calls it when it stops the replica
        try:
            self.shutdown()
        except Exception as exc:  # interpreter shutdown: nothing left to report to
            log.warning("ray_replica_shutdown_failed", error=str(exc))

