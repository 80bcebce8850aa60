"""`remote:` settings: defined with the rest of the configuration (`modelswap.config.remote`)."""

from modelswap.config.remote import RemoteConfig, default_cache_dir

__all__ = ["RemoteConfig", "default_cache_dir"]
