"""Signature names that are one function: warm it once, serve it under every name.

A Keras 3 export has `serve` and `serving_default`; `tf.saved_model.save` wraps each
signature in its own wrapper function, so a loaded model has two ConcreteFunctions that
call the same inner function on the same variables. Each pays the first-call cost
(graph optimisation, kernel set-up: ~0.6 s for a ResNet50) on its own. `distinct` maps
such names to one of the wrappers, so warming it warms every name.

Two signatures are one function only when their FunctionDefs are equal apart from the
function's name and the `_user_specified_name` attributes of its arguments, they capture
the very same tensors (variables), and their input and output structures are equal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["DEFAULT_SIGNATURE", "distinct"]

DEFAULT_SIGNATURE = "serving_default"


def _key(fn: Any) -> tuple[object, ...] | None:
    """What makes `fn` the computation it is, or None when it cannot be told."""
    try:
        fdef = type(fn.function_def)()
        fdef.CopyFrom(fn.function_def)
        fdef.signature.name = ""
        for attrs in fdef.arg_attr.values():
            attrs.attr.pop("_user_specified_name", None)
        return (fdef.SerializeToString(deterministic=True),
                tuple(id(t) for t in fn.captured_inputs),
                repr(fn.structured_input_signature), repr(fn.structured_outputs))
    except Exception:  # not a ConcreteFunction as TensorFlow builds them: keep it apart
        return None


def distinct(signatures: Mapping[str, Any]) -> dict[str, Any]:
    """`signatures` with every group of names that are one function mapped to one member:
    `serving_default` when it is in the group, else the first name in sorted order."""
    groups: dict[object, list[str]] = {}
    for name in sorted(signatures):
        key = _key(signatures[name])
        groups.setdefault(key if key is not None else ("apart", name), []).append(name)
    out: dict[str, Any] = {}
    for names in groups.values():
        chosen = DEFAULT_SIGNATURE if DEFAULT_SIGNATURE in names else names[0]
        out.update({name: signatures[chosen] for name in names})
    return {name: out[name] for name in signatures}
