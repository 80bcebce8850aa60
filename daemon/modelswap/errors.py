"""Typed errors of modelswap."""

from __future__ import annotations


class ModelSwapError(Exception):
    """Base class of every error modelswap raises."""


class ConfigError(ModelSwapError):
    """The configuration is invalid; names the file, line and key path.

    `errors` lists every problem found, sorted by line (one entry: this error itself);
    the attributes and `str()` of the first one are this error's, and `str()` of an error
    with several problems has one line per problem.
    """

    def __init__(
        self, message: str, *, file: str | None = None, line: int | None = None,
        key: str | None = None, errors: list[ConfigError] | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.key = key
        self.errors: list[ConfigError] = errors if errors else [self]
        super().__init__(str(self))

    @classmethod
    def of(cls, errors: list[ConfigError]) -> ConfigError:
        """One error standing for all of `errors` (sorted by line, first one's attributes)."""
        ordered = sorted(errors, key=lambda e: (e.line is None, e.line or 0))
        first = ordered[0]
        return cls(first.message, file=first.file, line=first.line, key=first.key,
                   errors=ordered if len(ordered) > 1 else None)

    def _one(self) -> str:
        where = self.file or "<config>"
        if self.line is not None:
            where = f"{where}:{self.line}"
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"

    def __str__(self) -> str:
        errors = getattr(self, "errors", None)
        if not errors or errors == [self]:
            return self._one()
        return "\n".join(e._one() for e in errors)


class ModelNotFound(ModelSwapError, LookupError):
    """No model of that name is configured."""


class VersionNotAvailable(ModelSwapError, LookupError):
    """The model is configured, but the requested version or label is not available."""


class LoadError(ModelSwapError):
    """A version could not be loaded. `transient` errors are retried with backoff."""

    transient: bool = False
    files: str | None = None  # identity of the files that failed (set by the load pool)


class TransientLoadError(LoadError):
    """An I/O-like failure that may go away on its own; retried with backoff."""

    transient = True


class IncompleteModel(LoadError):
    """The version's files are not complete (yet)."""


class TagMismatch(LoadError):
    """No MetaGraph has exactly the configured tag set."""


class SignatureMismatch(LoadError):
    """A required signature is missing, or the signatures break the contract."""


class Untrusted(LoadError):
    """The folder could have been written by another user (see `trust` in the config)."""


class InsufficientMemory(LoadError):
    """The version would not fit beside the served one (`loader.memory_policy: refuse`); it
    is loaded once memory allows."""


class WarmupFailed(LoadError):
    """Warmup of a loaded version raised or timed out."""


class LoadTimeout(LoadError):
    """A load (with its warmup) ran past `loader.load_timeout`; its thread was abandoned."""
