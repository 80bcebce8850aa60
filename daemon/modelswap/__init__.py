"""modelswap: keep TensorFlow SavedModels hot inside Python services."""

from .errors import (
    ConfigError,
    IncompleteModel,
    LoadError,
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
