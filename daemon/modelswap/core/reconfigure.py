"""Config reload: the model records a new set of models leads to, computed apart from the
coordinator so that a reload is applied whole or not at all."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from modelswap.config import ModelConfig
from modelswap.core.records import ModelRecord, VersionRecord
from modelswap.events import State
from modelswap.logger import get_logger

log = get_logger("modelswap")


@dataclass
class Reconfigured:
    """What applying a new set of models changes."""

    models: dict[str, ModelRecord]
    removed: dict[str, ModelRecord] = field(default_factory=dict)  # versions still to retire
    retire: list[tuple[ModelRecord, VersionRecord]] = field(default_factory=list)
    changed: set[str] = field(default_factory=set)


def reconfigure(current: Mapping[str, ModelRecord], models: Sequence[ModelConfig],
                new_record: Callable[[ModelConfig], ModelRecord]) -> Reconfigured:
    """The records for `models`, given the `current` ones (which are left untouched).

    Removed models retire; added ones load; a model whose policy, labels, marker or trust
    changed is re-planned in place; one whose base_path, tags, required signatures or
    load_options changed starts afresh while its loaded versions keep serving until a
    version under the new settings is available. Unchanged models keep their records.
    """
    wanted = {m.name: m for m in models}
    out = Reconfigured({})
    for name in sorted(set(current) - set(wanted)):
        old = current[name]
        out.retire += [(old, v) for v in old.records() if v.state is State.AVAILABLE]
        out.removed[name] = old
        out.changed.add(name)
        log.info("model_removed", model=name)
    for name, cfg in wanted.items():
        m = current.get(name)
        if m is not None and m.config == cfg:
            out.models[name] = m
            continue
        out.changed.add(name)
        if m is None:
            out.models[name] = new_record(cfg)
            log.info("model_added", model=name, base_path=str(cfg.base_path))
        elif (m.config.base_path, m.config.tag_set, m.config.signatures,
              m.config.load_options) \
                == (cfg.base_path, cfg.tag_set, cfg.signatures, cfg.load_options):
            out.models[name] = dataclasses.replace(m, config=cfg, scan_wanted=True)
            log.info("model_changed", model=name, reload_versions=False)
        else:
            keep = [v for v in m.records() if v.state in (State.AVAILABLE, State.UNLOADING)]
            out.models[name] = dataclasses.replace(new_record(cfg), outgoing=keep)
            log.info("model_changed", model=name, reload_versions=True)
    return out
