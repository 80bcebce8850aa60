"""What consumers read: the immutable snapshot of published versions, the status, and
the events, all replaced together by the coordinator after each batch."""

from __future__ import annotations

import threading
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

    @property
    def pending(self) -> bool:
        """Events are queued that `publish` has not emitted yet."""
        return bool(self._events)

    def warn_long_held(self, limit: float) -> None:
        """Log one `handle_held_long` warning per handle held longer than `limit` seconds."""
        if limit <= 0:
            return
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
        snapshot, status = dict(self.snapshot), dict(self.status)
        changed = bool(self._events)
        for name in names:
            m = models.get(name)
            if m is None:
                changed |= snapshot.pop(name, None) is not None
                status.pop(name, None)
                continue
            now = m.status()
            if status.get(name) != now or name not in snapshot:  # unchanged: keep the view
                snapshot[name], status[name] = m.view(), now
                changed = True
        if not changed:
            return
        with self.changed:
            self.snapshot = MappingProxyType(snapshot)
            self.status = MappingProxyType(status)
            self.served = tuple(v.served for m in everything for v in m.records()
                                if v.served is not None)
            self.changed.notify_all()
        events, self._events = self._events, []
        for event in events:
            self._emit(event)
