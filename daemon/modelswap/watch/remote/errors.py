"""Typed, secret-free errors from object stores.

obstore raises its own exception classes with long messages (request URLs, response bodies,
a debug dump). `classify` maps one to a `RemoteError` whose text is a single redacted line:
what a status page, a log event or a CLI error may show.
"""

from __future__ import annotations

import os
import re
from typing import Literal

from obstore.exceptions import (
    AlreadyExistsError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionError,
    UnauthenticatedError,
)

from modelswap.logger import get_logger

__all__ = ["ErrorKind", "RemoteError", "classify", "log_store_failure", "redact"]
log = get_logger("modelswap.remote")

ErrorKind = Literal["refused", "unreachable", "not_found", "exists", "changed", "invalid"]

# user:password@ in any URL, any user info in http(s) ones (abfs://container@account is not)
_USERINFO = re.compile(r"(\b[a-zA-Z][\w+.-]*://)[^/@\s:]*:[^/@\s]*@|(\bhttps?://)[^/@\s]+@")
_QUERY = re.compile(r"(\b[a-zA-Z][\w+.-]*://[^\s?\"'<>]*)\?[^\s\"'<>]*")
_SECRET_ENV = re.compile(
    r"^(AWS|AZURE|GOOGLE|GCS|GCP|MINIO)_\w*(SECRET|TOKEN|KEY|PASSWORD|SAS)\w*$")
_XML_CODE = re.compile(r"<Code>([^<]{1,100})</Code>")
_STATUS = re.compile(r"\b([45]\d\d) [A-Z][A-Za-z ]+?(?=:|$)")
_MAX_LEN = 400


def redact(text: str) -> str:
    """`text` without secrets: URL user info and query strings (signatures, SAS tokens),
    and the value of every credential-like environment variable, become `***`."""
    text = _USERINFO.sub(lambda m: f"{m.group(1) or m.group(2)}***@", text)
    text = _QUERY.sub(r"\1?***", text)
    for name, value in os.environ.items():
        if len(value) >= 8 and _SECRET_ENV.match(name) and value in text:
            text = text.replace(value, "***")
    return text


class RemoteError(Exception):
    """A failed store operation: `kind` says what to do about it, `str()` is safe to show."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind


def _one_line(exc: BaseException) -> str:
    """The first line of an obstore message, its XML body reduced to the error code."""
    full = str(exc)
    first = full.split("\n", 1)[0].strip()
    head, xml, _ = first.partition("<?xml")
    code = _XML_CODE.search(full)
    line = head.rstrip(": ")
    if xml and code:
        line = f"{line} ({code.group(1)})"
    return redact(line)[:_MAX_LEN] or type(exc).__name__


def classify(exc: BaseException) -> RemoteError:
    """Map an exception raised by obstore to a `RemoteError` with a redacted one-line text."""
    if isinstance(exc, RemoteError):
        return exc
    line = _one_line(exc)
    status = _STATUS.search(str(exc).split("\n", 1)[0])
    code = status.group(1) if status else ""
    kind: ErrorKind
    if isinstance(exc, (PermissionDeniedError, UnauthenticatedError)) or code in ("401", "403"):
        kind = "refused"
    elif isinstance(exc, (NotFoundError, FileNotFoundError)) or code == "404":
        kind = "not_found"
    elif isinstance(exc, AlreadyExistsError):
        kind = "exists"
    elif isinstance(exc, PreconditionError) or code == "412":
        kind = "changed"
    elif isinstance(exc, (ValueError, TypeError)):
        kind = "invalid"
    else:
        kind = "unreachable"
    return RemoteError(kind, line)


def log_store_failure(err: RemoteError, model: str, url: str) -> None:
    """One log event for a store that stopped answering: credentials refused is an error
    naming the model (never a traceback), anything else a warning."""
    if err.kind == "refused":
        log.error("remote_refused", model=model, url=url,
                  error=f"credentials refused for model {model!r}: {err}")
    else:
        log.warning("remote_unreachable", model=model, url=url, kind=err.kind, error=str(err))
