"""Config reload: apply a new set of models to the coordinator without a restart."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from modelswap.config import ModelConfig
from modelswap.core.records import ModelRecord
from modelswap.events import State
from modelswap.logger import get_logger

if TYPE_CHECKING:
    from modelswap.core.coordinator import Coordinator

log = get_logger("modelswap")


def apply(coordinator: Coordinator, models: Sequence[ModelConfig]) -> None:
    """Apply a new set of models to the coordinator's records (on its thread).

    Removed models retire; added ones load; a model whose policy, labels, marker or
    trust changed is re-planned in place; one whose base_path, tags, required
    signatures or load_options changed starts afresh while its loaded versions keep serving until a
    version under the new settings is available. Unchanged models are untouched.
    """
    wanted = {m.name: m for m in models}
    for name in sorted(set(coordinator._models) - set(wanted)):
        old = coordinator._models.pop(name)
        for v in old.records():
            if v.state is State.AVAILABLE:
                coordinator._retire(old, v)
        if any(v.state is State.UNLOADING for v in old.records()):
            coordinator._removed[name] = old
        coordinator._dirty.add(name)
        log.info("model_removed", model=name)
    for name, cfg in wanted.items():
        current = coordinator._models.get(name)
        if current is not None and current.config == cfg:
            continue
        coordinator._dirty.add(name)
        if current is None:
            coordinator._models[name] = ModelRecord(cfg)
            log.info("model_added", model=name, base_path=str(cfg.base_path))
        elif (current.config.base_path, current.config.tag_set, current.config.signatures,
              current.config.load_options) \
                == (cfg.base_path, cfg.tag_set, cfg.signatures, cfg.load_options):
            current.config = cfg
            log.info("model_changed", model=name, reload_versions=False)
        else:
            keep = [v for v in current.records()
                    if v.state in (State.AVAILABLE, State.UNLOADING)]
            coordinator._models[name] = ModelRecord(cfg, outgoing=keep)
            log.info("model_changed", model=name, reload_versions=True)
