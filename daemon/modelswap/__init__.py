"""modelswap: keep TensorFlow SavedModels hot inside Python services."""

from .errors import (
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
from .handles import Served
from .states import ModelEvent, State, VersionStatus
from .swap import ModelSwap

__all__ = [
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
]
