"""modelswap: keep TensorFlow SavedModels hot inside Python services.

The package follows the pipeline (see DESIGN.md, "Layout v2"): `watch` notices version
folders, `gate` proves them complete, `core` plans and publishes, `load` loads and warms up;
`api.ModelSwap` wires them together, `service` runs the daemon, `observe` serves status and
metrics, `cli` is the command line.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from modelswap.config import Config, load_config, parse_config
from modelswap.errors import (
    ConfigError,
    IncompleteModel,
    InsufficientMemory,
    LoadError,
    LoadTimeout,
    ModelNotFound,
    ModelSwapError,
    SignatureMismatch,
    TagMismatch,
    TransientLoadError,
    Untrusted,
    VersionNotAvailable,
    WarmupFailed,
)
from modelswap.events import ModelEvent, State, VersionStatus
from modelswap.handles import Served
from modelswap.service.logs import configure_logging

if TYPE_CHECKING:
    from modelswap.api import ModelSwap


def __getattr__(name: str) -> Any:
    """`ModelSwap` is imported on first use, so that importing one part of the package
    (the planner, the config) does not import watchdog and the whole pipeline."""
    if name == "ModelSwap":
        from modelswap.api import ModelSwap

        return ModelSwap
    raise AttributeError(f"module 'modelswap' has no attribute {name!r}")


try:
    __version__ = version("modelswap")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "Config",
    "ConfigError",
    "IncompleteModel",
    "InsufficientMemory",
    "LoadError",
    "LoadTimeout",
    "ModelEvent",
    "ModelNotFound",
    "ModelSwap",
    "ModelSwapError",
    "Served",
    "SignatureMismatch",
    "State",
    "TagMismatch",
    "TransientLoadError",
    "Untrusted",
    "VersionNotAvailable",
    "VersionStatus",
    "WarmupFailed",
    "__version__",
    "configure_logging",
    "load_config",
    "parse_config",
]
