"""The configuration schema: pydantic models for every section, with defaults."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    PrivateAttr,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationInfo,
    model_validator,
)

from modelswap.config.positions import line_for
from modelswap.config.remote import (
    RemoteConfig,
    cache_dir_of,
    default_cache_dir,
    split_remote,
    validate_url,
)
from modelswap.config.trust import TrustConfig as TrustConfig  # re-exported
from modelswap.config.trust import sorted_unique, trust_input
from modelswap.config.types import (
    FROZEN,
    Duration,
    PositiveDuration,
    PositiveInt,
    ResolvedPath,
    Size,
)

_NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")
_T = TypeVar("_T", str, int)


def _name(value: str) -> str:
    if not _NAME_RE.fullmatch(value) or value in (".", ".."):
        raise ValueError(f"invalid name {value!r}: use letters, digits, '_', '.' and '-'")
    return value


def _marker(value: str) -> str:
    if not value or "/" in value or "\\" in value or "\0" in value or value in (".", ".."):
        raise ValueError(f"marker must be a plain file name (no '/'), got {value!r}")
    return value


def _hook_path(value: object) -> str:
    module, sep, attr = value.partition(":") if isinstance(value, str) else ("", "", "")
    parts = [*module.split("."), *attr.split(".")]
    if not sep or not all(p.isidentifier() for p in parts):
        raise ValueError(f"expected 'pkg.module:callable', got {value!r}")
    return str(value)


def _off(value: object) -> object:
    return "off" if value is False else value  # YAML 1.1 reads a bare `off` as false


def _warmup(value: object) -> str:
    value = _off(value)
    if value in ("auto", "off"):
        return str(value)
    try:
        return _hook_path(value)
    except ValueError:
        raise ValueError(f"expected auto, off or 'pkg.module:callable', got {value!r}") from None


def _listen(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    valid = bool(sep) and bool(host) and not any(c.isspace() or c in "[]/" for c in host)
    if not (valid and port.isascii() and port.isdigit() and int(port) <= 65535):
        raise ValueError(f"expected 'host:port' with port 0-65535, e.g. 127.0.0.1:8501, "
                         f"got {value!r}")
    return value


def _non_empty(what: str) -> BeforeValidator:
    def check(value: object) -> object:
        if isinstance(value, (list, tuple)) and not value:
            raise ValueError(f"at least one {what} is required")
        return value
    return BeforeValidator(check)


_DEVICE_RE = re.compile(r"(/[a-z_]+:[A-Za-z0-9_.*-]+)+")


def _device(value: str) -> str:
    if not _DEVICE_RE.fullmatch(value):
        raise ValueError(f"expected a device name like '/job:localhost', got {value!r}")
    return value


Name = Annotated[StrictStr, AfterValidator(_name)]
NonEmptyStr = Annotated[StrictStr, Field(min_length=1)]
HookPath = Annotated[str, BeforeValidator(_hook_path)]
_FROZEN = FROZEN


class LoadOptions(BaseModel):
    """`tf.saved_model.LoadOptions` for every load of one model (TensorFlow's defaults)."""

    model_config = _FROZEN
    allow_partial_checkpoint: StrictBool = False
    experimental_io_device: Annotated[StrictStr, AfterValidator(_device)] | None = None
    experimental_variable_policy: Literal[
        "save_variable_devices", "expand_distributed_variables"] | None = None
    experimental_load_function_aliases: StrictBool = False
    experimental_skip_checkpoint: StrictBool = False

    @property
    def is_default(self) -> bool:
        """True when every option has TensorFlow's default value."""
        return self == LoadOptions()


class VersionPolicy(BaseModel):
    """Which versions to serve: the newest N, all, or a specific set."""

    model_config = _FROZEN
    kind: Literal["latest", "all", "specific"]
    latest: PositiveInt = 1
    specific: Annotated[tuple[PositiveInt, ...], AfterValidator(sorted_unique)] = ()

    @model_validator(mode="after")
    def _consistent(self) -> VersionPolicy:
        if self.kind == "specific" and not self.specific:
            raise ValueError("{specific: [versions]} needs at least one version")
        if self.kind != "specific" and self.specific:
            raise ValueError(f"'specific' versions given with kind {self.kind!r}")
        return self


def _policy_input(value: object) -> object:
    if value == "all":
        return {"kind": "all"}
    if isinstance(value, VersionPolicy) or (isinstance(value, dict) and "kind" in value):
        return value  # already canonical (e.g. from model_dump())
    if isinstance(value, dict) and len(value) == 1:
        key = next(iter(value))
        if key in ("latest", "specific"):
            return {"kind": key, key: value[key]}
    raise ValueError(f"expected {{latest: N}}, 'all' or {{specific: [versions]}}, got {value!r}")


class ModelConfig(BaseModel):
    """One served model: a name and the folder holding its numbered versions.

    A `base_path` given as a URL (`s3://bucket/prefix`) is kept as `source_url`, and
    `base_path` becomes the local mirror the pipeline watches: `<remote.cache_dir>/<name>`.
    """

    model_config = _FROZEN
    name: Name
    base_path: ResolvedPath
    source_url: Annotated[StrictStr, AfterValidator(validate_url)] | None = None
    tags: Annotated[tuple[NonEmptyStr, ...], _non_empty("tag"), AfterValidator(sorted_unique)] \
        = ("serve",)
    version_policy: Annotated[VersionPolicy, BeforeValidator(_policy_input)] = VersionPolicy(
        kind="latest")
    labels: dict[Name, PositiveInt] = Field(default_factory=dict)
    signatures: tuple[NonEmptyStr, ...] = ()
    marker: Annotated[StrictStr, AfterValidator(_marker)] | None = None
    trust: Annotated[TrustConfig | None, BeforeValidator(trust_input)] = TrustConfig()
    load_options: LoadOptions = LoadOptions()
    warmup: Annotated[str, BeforeValidator(_warmup)] = "auto"
    warmup_timeout: PositiveDuration = 60.0
    contract: Annotated[Literal["inputs", "signatures", "off"], BeforeValidator(_off)] = "inputs"

    @model_validator(mode="before")
    @classmethod
    def _remote_base_path(cls, data: object) -> object:
        # a URL base path outside a Config (Config rewrites it first, with remote.cache_dir)
        return split_remote(data, default_cache_dir(), only_urls=True)

    @property
    def tag_set(self) -> frozenset[str]:
        """The MetaGraph tag set a version must have."""
        return frozenset(self.tags)

    @property
    def is_remote(self) -> bool:
        """True if the versions come from an object store (`source_url`)."""
        return self.source_url is not None


class WatchConfig(BaseModel):
    """How model folders are watched."""

    model_config = _FROZEN
    mode: Literal["auto", "inotify", "poll"] = "auto"
    poll_interval: PositiveDuration = 1.0
    rescan_interval: PositiveDuration = 30.0
    settle: Duration = 0.2
    gate_threads: PositiveInt = 2
    gate_timeout: PositiveDuration = 60.0
    verify: Literal["auto", "checksums", "sizes"] = "auto"


class LoaderConfig(BaseModel):
    """Load pool, retries and swap behaviour."""

    model_config = _FROZEN
    threads: PositiveInt = 2
    max_retries: Annotated[StrictInt, Field(ge=0)] = 5
    retry_interval: Duration = 2.0
    load_timeout: Duration = 600.0
    swap_policy: Literal["availability", "resource"] = "availability"
    memory_policy: Literal["fallback", "refuse", "ignore"] = "refuse"
    memory_factor: Annotated[float, Field(gt=0, le=100)] = 1.0
    memory_limit: Size | None = None
    gc_freeze: StrictBool = True
    handle_warn_after: Duration = 300.0


_READY_WHEN = {"all": "all", "any": "any", "immediately": "none"}


class ServiceConfig(BaseModel):
    """Daemon behaviour."""

    model_config = _FROZEN
    require: Literal["all", "any", "none"] = "any"
    start_timeout: Duration = 600.0
    ready_when: Literal["all", "any", "immediately"] | None = None  # deprecated: `require`
    stop_timeout: Duration = 30.0
    state_dir: ResolvedPath | None = None
    fleet_status: StrictBool = False  # write _fleet/<member>.json into each base path

    @model_validator(mode="before")
    @classmethod
    def _ready_when_alias(cls, data: object) -> object:
        value = data.get("ready_when") if isinstance(data, dict) else None
        if isinstance(data, dict) and isinstance(value, str) and value in _READY_WHEN:
            if data.get("require", _READY_WHEN[value]) != _READY_WHEN[value]:
                raise ValueError("ready_when is the old name of require: give only require")
            data = {**data, "require": _READY_WHEN[value]}
        return data


class LoggingConfig(BaseModel):
    """Log level and format."""

    model_config = _FROZEN
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class HttpConfig(BaseModel):
    """Optional status/metrics endpoint."""

    model_config = _FROZEN
    listen: Annotated[StrictStr, AfterValidator(_listen)] | None = None

    @property
    def address(self) -> tuple[str, int] | None:
        """(host, port) of `listen`, brackets stripped from IPv6 hosts; None if disabled."""
        if self.listen is None:
            return None
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


class HooksConfig(BaseModel):
    """`pkg.module:callable` hooks per lifecycle event."""

    model_config = _FROZEN
    on_loading: tuple[HookPath, ...] = ()
    on_available: tuple[HookPath, ...] = ()
    on_error: tuple[HookPath, ...] = ()
    on_retired: tuple[HookPath, ...] = ()


def _duplicate_name(models: object) -> tuple[int, str] | None:
    """Index and name of the first model whose name repeats an earlier one."""
    seen: set[str] = set()
    for i, model in enumerate(models if isinstance(models, (list, tuple)) else ()):
        name = model.get("name") if isinstance(model, dict) else getattr(model, "name", None)
        if isinstance(name, str):
            if name in seen:
                return i, name
            seen.add(name)
    return None


class Config(BaseModel):
    """The whole modelswap configuration; `source` is the file it came from."""

    model_config = _FROZEN
    models: Annotated[tuple[ModelConfig, ...], _non_empty("model")]
    watch: WatchConfig = WatchConfig()
    loader: LoaderConfig = LoaderConfig()
    service: ServiceConfig = ServiceConfig()
    logging: LoggingConfig = LoggingConfig()
    http: HttpConfig = HttpConfig()
    hooks: HooksConfig = HooksConfig()
    consumers: tuple[HookPath, ...] = ()
    python_path: tuple[ResolvedPath, ...] = ()
    trust: TrustConfig = TrustConfig()
    remote: RemoteConfig = Field(default_factory=RemoteConfig)
    _source: str | None = PrivateAttr(default=None)
    _lines: dict[tuple[str | int, ...], int] = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _default_trust(cls, data: object) -> object:
        """A top-level `trust:` section applies to every model with `trust: true` (the
        default); a model's own `trust:` mapping replaces it."""
        if not isinstance(data, dict) or not isinstance(data.get("trust"), dict) \
                or not isinstance(data.get("models"), list):
            return data
        try:
            default = TrustConfig.model_validate(data["trust"])
        except ValueError:
            return data  # reported once, at its own key
        models = [{**m, "trust": default} if isinstance(m, dict) and m.get("trust", True) is True
                  else m for m in data["models"]]
        return {**data, "models": models}

    @model_validator(mode="before")
    @classmethod
    def _remote_base_paths(cls, data: object, info: ValidationInfo) -> object:
        """Models with a URL base path get `base_path: <remote.cache_dir>/<name>`."""
        if not isinstance(data, dict) or not isinstance(data.get("models"), list):
            return data
        ctx = info.context if isinstance(info.context, Mapping) else {}
        cache_dir = cache_dir_of(data.get("remote"), ctx.get("base_dir"))
        return {**data, "models": [split_remote(m, cache_dir) for m in data["models"]]}

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        dup = _duplicate_name(self.models)
        if dup is not None:
            raise ValueError(f"duplicate model name {dup[1]!r}")
        return self

    @property
    def source(self) -> str | None:
        """The file (or "<string>") this config was parsed from."""
        return self._source

    def line_of(self, *key: str | int) -> int | None:
        """The line a key path (e.g. `"hooks", "on_error", 0`) was read from."""
        return line_for(tuple(key), self._lines)
