"""What consumers read: the immutable snapshot of published versions, the status, and
the events, all replaced together by the coordinator after each batch."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType

from modelswap.core.records import ModelRecord
from modelswap.events import ModelEvent, VersionStatus
from modelswap.handles import ModelView, Resident
from modelswap.logger import get_logger

log = get_logger("modelswap")


class Publisher:
    """Holds the published state; only the coordinator thread calls `record`/`publish`."""

    def __init__(self, emit: Callable[[ModelEvent], None]) -> None:
        self.snapshot: Mapping[str, ModelView] = MappingProxyType({})
        self.status: Mapping[str, tuple[VersionStatus, ...]] = MappingProxyType({})
        # every Resident not yet dropped (AVAILABLE and UNLOADING), for the handle gauges
        self.served: tuple[Resident, ...] = ()
        self.changed = threading.Condition()
        self._emit = emit
        self._events: list[ModelEvent] = []
        self._unsettled: frozenset[str] = frozenset()
        self._looked = -math.inf  # monotonic: the last look for handles held too long

    def settled(self, name: str) -> bool:
        """`name` was judged and none of its versions waits to be complete (any thread)."""
        return name not in self._unsettled and name in self.status

    @property
    def pending(self) -> bool:
        """Events are queued that `publish` has not emitted yet."""
        return bool(self._events)

    def warn_long_held(self, limit: float) -> None:
        """Log one `handle_held_long` warning per handle held longer than `limit` seconds
        (looked for at most once a second)."""
        now = time.monotonic()
        if limit <= 0 or now - self._looked < 1.0:
            return
        self._looked = now
        for resident in self.served:
            for age in resident.held_longer_than(limit):
                log.warning("handle_held_long", model=resident.name, version=resident.version,
                            held_s=round(age, 1), handle_warn_after_s=limit,
                            hint="a handle never released keeps its model in memory")

    def record(self, event: ModelEvent) -> None:
        """Queue an event; it is emitted once `publish` has made it visible."""
        self._events.append(event)

    def publish(self, models: Mapping[str, ModelRecord], names: Iterable[str],
                everything: Iterable[ModelRecord]) -> None:
        """Replace the views of `names` (dropping those not in `models`), wake waiters, then
        emit the queued events; `everything` are all records whose Served may be held."""
        snapshot: dict[str, ModelView] | None = None  # copies, made on the first change
        status: dict[str, tuple[VersionStatus, ...]] = {}
        unsettled = set(self._unsettled)
        for name in names:
            m = models.get(name)
            if m is None or m.settled():
                unsettled.discard(name)
            else:
                unsettled.add(name)
            now = m.status() if m is not None else None
            if now is not None and self.status.get(name) == now and name in self.snapshot:
                continue  # unchanged: keep the view
            if now is None and name not in self.snapshot and name not in self.status:
                continue
            if snapshot is None:
                snapshot, status = dict(self.snapshot), dict(self.status)
            if m is None or now is None:
                snapshot.pop(name, None)
                status.pop(name, None)
            else:
                snapshot[name], status[name] = m.view(), now
        self._unsettled = frozenset(unsettled)
        if snapshot is None and not self._events:
            return
        with self.changed:
            if snapshot is not None:
                self.snapshot = MappingProxyType(snapshot)
                self.status = MappingProxyType(status)
            self.served = tuple(v.served for m in everything for v in m.records()
                                if v.served is not None)
            self.changed.notify_all()
        events, self._events = self._events, []
        for event in events:
            self._emit(event)
