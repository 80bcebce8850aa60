"""Configuration: the schema (`schema`), YAML reading with file:line:key errors (`loading`),
YAML positions (`positions`), remote base paths (`remote`) and duration/size units (`units`)."""

from modelswap.config.loading import config_warnings, load_config, parse_config
from modelswap.config.remote import RemoteConfig
from modelswap.config.schema import (
    Config,
    HooksConfig,
    HttpConfig,
    LoaderConfig,
    LoadOptions,
    LoggingConfig,
    ModelConfig,
    ServiceConfig,
    TrustConfig,
    VersionPolicy,
    WatchConfig,
)
from modelswap.config.units import parse_duration, parse_size

__all__ = [
    "Config", "HooksConfig", "HttpConfig", "LoadOptions", "LoaderConfig", "LoggingConfig",
    "ModelConfig", "RemoteConfig", "ServiceConfig", "TrustConfig", "VersionPolicy", "WatchConfig",
    "config_warnings", "load_config", "parse_config", "parse_duration", "parse_size",
]
