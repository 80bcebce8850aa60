"""The library's loggers: the host's structlog set-up if it made one, else stdlib logging.

modelswap never configures logging on its own. Until the host calls `structlog.configure`
(`modelswap.configure_logging` does), events go to stdlib `logging` under their logger
name ("modelswap.http", ...) as `event key=value ...` text, so Python's defaults print
only warnings and errors, and a host's `logging` set-up applies.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog


def _to_stdlib(logger: Any, method: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
    exc_info = event.pop("exc_info", None)
    text = str(event.pop("event", ""))
    rest = " ".join(f"{key}={value!r}" for key, value in event.items())
    return {"msg": f"{text} {rest}" if rest else text, "exc_info": exc_info}


def _fallback(name: str) -> Any:
    return structlog.wrap_logger(logging.getLogger(name), processors=[_to_stdlib],
                                 wrapper_class=structlog.stdlib.BoundLogger)


class _Logger:
    """Resolves the target on each call: a host may configure structlog after import."""

    __slots__ = ("_context", "_name")

    def __init__(self, name: str, context: Mapping[str, Any] | None = None) -> None:
        self._name = name
        self._context = dict(context or {})

    def bind(self, **values: Any) -> _Logger:
        return _Logger(self._name, {**self._context, **values})

    def __getattr__(self, method: str) -> Any:
        target = (structlog.get_logger(self._name) if structlog.is_configured()
                  else _fallback(self._name))
        return getattr(target.bind(**self._context) if self._context else target, method)


def get_logger(name: str) -> Any:
    """A structlog-style logger (`log.info("event", key=value)`) for a modelswap module."""
    return _Logger(name)
