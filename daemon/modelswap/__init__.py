"""modelswap: keep TensorFlow SavedModels hot inside Python services.

The package follows the pipeline (see DESIGN.md, "Layout v2"): `watch` notices version
folders, `gate` proves them complete, `core` plans and publishes, `load` loads and warms up;
`api.ModelSwap` wires them together, `service` runs the daemon, `observe` serves status and
metrics, `cli` is the command line.
"""

from importlib.metadata import PackageNotFoundError, version

from modelswap.api import ModelSwap
from modelswap.config import Config, load_config, parse_config
from modelswap.errors import (
    ConfigError,
    IncompleteModel,
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

try:
    __version__ = version("modelswap")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "Config",
    "ConfigError",
    "IncompleteModel",
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
