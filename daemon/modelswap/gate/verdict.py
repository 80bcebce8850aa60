"""What the gate says about one version folder."""

from __future__ import annotations

from dataclasses import dataclass

from modelswap.errors import IncompleteModel, LoadError
from modelswap.load.contract import SignatureIO


@dataclass(frozen=True)
class MetaInfo:
    """What the gate learnt from the chosen MetaGraph."""

    tag_sets: tuple[frozenset[str], ...]
    signatures: tuple[str, ...]
    # name → inputs/outputs (dtype, shape) of each SignatureDef, for contract checks
    signature_io: tuple[tuple[str, SignatureIO], ...] = ()


@dataclass(frozen=True)
class Verdict:
    """The gate's answer for one version folder.

    `ready`: load it. Otherwise `error` is set: an `IncompleteModel` means wait
    (re-check at `recheck_at` or on the next event); any other error type is final
    for these files (`signature`). `check` names the check that held it back.
    """

    ready: bool
    signature: tuple[object, ...]
    error: type[LoadError] | None = None
    reason: str | None = None
    recheck_at: float | None = None  # monotonic
    meta: MetaInfo | None = None
    check: str | None = None

    @property
    def waiting(self) -> bool:
        return not self.ready and self.error is IncompleteModel
