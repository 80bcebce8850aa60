"""Prometheus metrics of one ModelSwap, on its own registry.

Gauges and the counters the coordinator already keeps are read at scrape time
from the published snapshots (nothing to keep in sync); load durations, swaps
and failures are observed from the `ModelEvent`s subscribers receive.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from modelswap.events import ModelEvent, State

if TYPE_CHECKING:
    from modelswap.core.coordinator import Coordinator

__all__ = ["DURATION_BUCKETS", "Metrics"]

# loads take from ~10 ms (a tiny model) to minutes (a large one read from NFS)
DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
                    300.0, 600.0, math.inf)
STAGES = ("validate", "load", "warmup")  # ModelEvent.durations keys → stage label
DETECT_FROM = {"ready_to_available": "ready", "event_to_available": "event"}


class _StateCollector(Collector):
    """Version states, served versions, handles and the coordinator's counters, at scrape time."""

    def __init__(self, coordinator: Coordinator, hook_errors: Callable[[], int],
                 consumer_errors: Callable[[], int],
                 consumers_abandoned: Callable[[], int]) -> None:
        self._coordinator = coordinator
        self._hook_errors = hook_errors
        self._consumer_errors = consumer_errors
        self._consumers_abandoned = consumers_abandoned

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        c = self._coordinator
        status, snapshot, served = c.status_snapshot, c.snapshot, c.served_versions
        (states, current, handles, hooks, consumers, rescans, changes, events, steps, slow,
         abandoned) = self._families()
        for name, versions in sorted(status.items()):
            for v in versions:
                for state in State:
                    states.add_metric([name, str(v.version), state.value],
                                      1.0 if v.state is state else 0.0)
            view = snapshot.get(name)
            newest = view.newest if view is not None else None
            current.add_metric([name], float(newest.version) if newest is not None else 0.0)
        held: dict[tuple[str, int], int] = {}
        for s in served:  # a reload can keep an old copy of a version beside a new one
            held[s.name, s.version] = held.get((s.name, s.version), 0) + s.refs
        for (name, version), refs in sorted(held.items()):
            handles.add_metric([name, str(version)], float(refs))
        counters = c.counters
        hooks.add_metric([], float(self._hook_errors()))
        consumers.add_metric([], float(self._consumer_errors()))
        rescans.add_metric([], float(counters.rescans))
        changes.add_metric([], float(counters.rescan_changes))
        events.add_metric([], float(counters.events))
        steps.add_metric([], float(counters.step_failures))
        slow.add_metric([], float(counters.slow_scans))
        abandoned.add_metric([], float(self._consumers_abandoned()))
        yield from (states, current, handles, hooks, consumers, rescans, changes, events, steps,
                    slow, abandoned)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily,
                             CounterMetricFamily, CounterMetricFamily, CounterMetricFamily,
                             CounterMetricFamily, CounterMetricFamily, CounterMetricFamily,
                             CounterMetricFamily, CounterMetricFamily]:
        return (
            GaugeMetricFamily("modelswap_model_version_state",
                              "1 for the current state of each tracked version, 0 for the others",
                              labels=["model", "version", "state"]),
            GaugeMetricFamily("modelswap_served_version",
                              "The newest available version of each model (0: none is served)",
                              labels=["model"]),
            GaugeMetricFamily("modelswap_active_handles",
                              "Handles consumers hold on a published or retiring version",
                              labels=["model", "version"]),
            CounterMetricFamily("modelswap_hook_errors",
                                "Hook and subscriber calls that raised (process-wide)"),
            CounterMetricFamily("modelswap_consumer_errors",
                                "Consumer threads that raised and were restarted (process-wide)"),
            CounterMetricFamily("modelswap_rescans", "Periodic full rescans of every base path"),
            CounterMetricFamily("modelswap_rescan_changes",
                                "Changes on disk a rescan found that no filesystem event had "
                                "reported (non-zero: events are being lost)"),
            CounterMetricFamily("modelswap_fs_events",
                                "Filesystem events received (hints naming a model)"),
            CounterMetricFamily("modelswap_coordinator_step_failures",
                                "Coordinator steps that raised (logged as "
                                "coordinator_step_failed; the loop went on)"),
            CounterMetricFamily("modelswap_gate_jobs_abandoned",
                                "Gate jobs (listing, checks) abandoned after watch.gate_timeout: "
                                "a slow or hung file system"),
            CounterMetricFamily("modelswap_consumers_abandoned",
                                "Consumers that ignored their stop event past "
                                "service.stop_timeout (process-wide)"),
        )


class _RemoteCollector(Collector):
    """Remote stores, per model, read from the mirrors' counters at scrape time."""

    KINDS = ("list", "get", "head")

    def __init__(self, remote: Callable[[], Mapping[str, Any]]) -> None:
        self._remote = remote

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        requests, downloaded, failures, reachable, downloads = self._families()
        for name, mirror in sorted(self._remote().items()):
            counters = mirror.counters
            for kind in self.KINDS:
                requests.add_metric([name, kind], float(counters.get(kind, 0)))
            downloaded.add_metric([name], float(counters.get("bytes_downloaded", 0)))
            failures.add_metric([name], float(counters.get("list_failures", 0)))
            reachable.add_metric([name], 0.0 if mirror.reachable is False else 1.0)
            downloads.add_metric([name], float(counters.get("downloads", 0)))
        yield from (requests, downloaded, failures, reachable, downloads)

    @staticmethod
    def _families() -> tuple[CounterMetricFamily, CounterMetricFamily, CounterMetricFamily,
                             GaugeMetricFamily, CounterMetricFamily]:
        return (
            CounterMetricFamily("modelswap_remote_requests",
                                "Requests to a model's remote store, by kind (list, get, head)",
                                labels=["model", "kind"]),
            CounterMetricFamily("modelswap_remote_downloaded_bytes",
                                "Bytes downloaded from a model's remote store",
                                labels=["model"]),
            CounterMetricFamily("modelswap_remote_unreachable",
                                "Listings of a model's remote store that failed (store "
                                "unreachable, slow or refusing; the cached versions serve)",
                                labels=["model"]),
            GaugeMetricFamily("modelswap_remote_reachable",
                              "1 if the last listing of the model's remote store worked",
                              labels=["model"]),
            CounterMetricFamily("modelswap_remote_downloads",
                                "Versions downloaded into the cache", labels=["model"]),
        )


class Metrics:
    """The metrics of one ModelSwap on a private `CollectorRegistry`, so several instances
    (and tests) never collide. Subscribe `observe` to the ModelSwap's events."""

    def __init__(self, coordinator: Coordinator, *, hook_errors: Callable[[], int],
                 consumer_errors: Callable[[], int] = lambda: 0,
                 consumers_abandoned: Callable[[], int] = lambda: 0,
                 models: Iterable[str] = (),
                 remote: Callable[[], Mapping[str, Any]] = dict) -> None:
        self.registry = registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        self._load = Histogram(
            "modelswap_load_duration_seconds", "Seconds spent loading a version, by stage",
            ["model", "stage"], buckets=DURATION_BUCKETS, registry=registry)
        self._detect = Histogram(
            "modelswap_detect_to_available_seconds",
            "Seconds from a version passing the gate (from=ready), or from the first "
            "filesystem event naming it (from=event), to its publication",
            ["model", "from"], buckets=DURATION_BUCKETS, registry=registry)
        self._failures = Counter(
            "modelswap_load_failures", "Versions that failed the gate or a load, by error type",
            ["model", "reason"], registry=registry)
        self._swaps = Counter(
            "modelswap_swaps", "Versions published (made available)", ["model"],
            registry=registry)
        registry.register(_StateCollector(coordinator, hook_errors, consumer_errors,
                                          consumers_abandoned))
        registry.register(_RemoteCollector(remote))
        for name in models:
            self._swaps.labels(name)

    def observe(self, event: ModelEvent) -> None:
        """Count one state change (a subscriber: never raises on odd input)."""
        if event.state is State.AVAILABLE:
            self._swaps.labels(event.model).inc()
            for key, seconds in event.durations:
                if key in STAGES:
                    self._load.labels(event.model, key).observe(max(seconds, 0.0))
                elif key in DETECT_FROM:
                    self._detect.labels(event.model, DETECT_FROM[key]).observe(max(seconds, 0.0))
        elif event.state is State.ERROR:
            self._failures.labels(event.model, event.error_type or "unknown").inc()

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """The registry rendered for a scrape: (body, content type), per the Accept header."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type

