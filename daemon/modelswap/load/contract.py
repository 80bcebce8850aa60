"""Signature contracts: a new version must not break the callers of the served one.

Checked before loading, from the SignatureDefs the completeness gate parsed out of
`saved_model.pb` (see `disk.MetaInfo.signature_io`):

* `inputs` (default): for every signature both versions have, the same input names,
  the same dtypes and compatible shapes (same rank; a dimension is compatible when
  either side is unknown or both are equal). An added or removed signature is fine.
* `signatures`: also every output the served version has, with the same dtype and a
  compatible shape, and no signature removed. Added signatures and outputs are fine:
  no caller of the served version can depend on them.
* `off`: no check.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from modelswap.errors import SignatureMismatch

__all__ = ["ContractMode", "SignatureIO", "TensorMeta", "check_contract", "signature_io",
           "violations"]

ContractMode = Literal["inputs", "signatures", "off"]


@dataclass(frozen=True)
class TensorMeta:
    """A SignatureDef TensorInfo: dtype name (`float32`, `string`, `composite` for a
    composite tensor) and shape (None: unknown rank; -1: unknown dimension)."""

    dtype: str
    shape: tuple[int, ...] | None

    def __str__(self) -> str:
        shape = "<unknown rank>" if self.shape is None else \
            "[" + ", ".join("?" if d < 0 else str(d) for d in self.shape) + "]"
        return f"{self.dtype} {shape}"


@dataclass(frozen=True)
class SignatureIO:
    """The inputs and outputs of one signature, sorted by name."""

    inputs: tuple[tuple[str, TensorMeta], ...]
    outputs: tuple[tuple[str, TensorMeta], ...]


def tensor_meta(info: Any) -> TensorMeta:
    """The dtype and shape of a SignatureDef's TensorInfo."""
    import tensorflow as tf

    if info.WhichOneof("encoding") == "composite_tensor":
        return TensorMeta("composite", None)
    proto = info.tensor_shape
    shape = None if proto.unknown_rank else tuple(max(int(d.size), -1) for d in proto.dim)
    try:
        dtype = tf.dtypes.as_dtype(info.dtype).name  # DT_FLOAT → "float32", as callers see it
    except TypeError:
        dtype = f"dtype_{info.dtype}"
    return TensorMeta(dtype, shape)


def _tensors(infos: Any) -> tuple[tuple[str, TensorMeta], ...]:
    return tuple((name, tensor_meta(infos[name])) for name in sorted(infos))


def signature_io(meta_graph: Any) -> tuple[tuple[str, SignatureIO], ...]:
    """Name → inputs/outputs of every signature of a MetaGraphDef (internal `__…` ones,
    like `__saved_model_init_op`, left out)."""
    defs = meta_graph.signature_def
    return tuple((name, SignatureIO(_tensors(defs[name].inputs), _tensors(defs[name].outputs)))
                 for name in sorted(defs) if not name.startswith("__"))


def _compatible(old: tuple[int, ...] | None, new: tuple[int, ...] | None) -> bool:
    if old is None or new is None:
        return True
    if len(old) != len(new):
        return False
    return all(a < 0 or b < 0 or a == b for a, b in zip(old, new, strict=True))


def _compare(kind: str, old: Mapping[str, TensorMeta], new: Mapping[str, TensorMeta],
             added_ok: bool) -> list[str]:
    problems: list[str] = []
    for name, was in old.items():
        now = new.get(name)
        if now is None:
            problems.append(f"{kind} {name!r} removed")
        elif was.dtype != now.dtype:
            problems.append(f"{kind} {name!r} dtype {was.dtype} → {now.dtype}")
        elif not _compatible(was.shape, now.shape):
            problems.append(f"{kind} {name!r} shape {was} → {now}")
    if not added_ok:
        problems += [f"{kind} {name!r} added ({new[name]})" for name in new if name not in old]
    return problems


def violations(served: Iterable[tuple[str, SignatureIO]], new: Iterable[tuple[str, SignatureIO]],
               mode: ContractMode) -> list[str]:
    """What in `new` breaks the callers of `served` under `mode`, one line per signature
    ("serving_default: input 'x' dtype float32 → int64; input 'z' removed")."""
    if mode == "off":
        return []
    new_map = dict(new)
    lines: list[str] = []
    for name, old in served:
        now = new_map.get(name)
        if now is None:
            if mode == "signatures":
                lines.append(f"signature {name!r} removed")
            continue
        problems = _compare("input", dict(old.inputs), dict(now.inputs), added_ok=False)
        if mode == "signatures":
            problems += _compare("output", dict(old.outputs), dict(now.outputs), added_ok=True)
        if problems:
            lines.append(f"{name}: " + "; ".join(problems))
    return lines


def check_contract(served: Iterable[tuple[str, SignatureIO]],
                   new: Iterable[tuple[str, SignatureIO]], mode: ContractMode,
                   served_version: int) -> None:
    """Raise `SignatureMismatch` with a readable diff when `new` breaks `served`'s contract."""
    found = violations(served, new, mode)
    if found:
        raise SignatureMismatch(f"breaks the {mode!r} contract of served version "
                                f"{served_version}: " + " | ".join(found))
