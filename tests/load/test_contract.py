"""Signature contracts: a version that would break the served version's callers is refused
before it is loaded, with a readable diff; the old version keeps serving."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from conftest import Exports, predict, yaml_for
from modelswap import State
from modelswap.gate.judge import Gate
from modelswap.load.contract import SignatureIO, TensorMeta, violations

SERVE = frozenset({"serve"})
Sigs = dict[str, tuple[list[Any], str]]  # signature → (input TensorSpecs, output name)


def export_sigs(path: Path, sigs: Sigs) -> Path:
    """A stateless model whose signatures return {output: float(first input)}."""
    import tensorflow as tf

    def function(specs: list[Any], output: str) -> Any:
        def body(*args: Any) -> Any:
            return {output: tf.cast(args[0], tf.float32)}
        return tf.function(body, input_signature=specs)

    functions = {name: function(specs, output) for name, (specs, output) in sigs.items()}
    tf.saved_model.save(tf.Module(), str(path), signatures=functions)
    return path


def spec(name: str, dtype: str = "float32", shape: list[int | None] | None = None) -> Any:
    import tensorflow as tf

    return tf.TensorSpec([None, 1] if shape is None else shape, tf.as_dtype(dtype), name=name)


def default(*specs: Any, output: str = "y") -> Sigs:
    return {"serving_default": (list(specs) or [spec("x")], output)}


def publish(tmp_path: Path, base: Path, version: int, sigs: Sigs) -> Path:
    staging = export_sigs(tmp_path / f"export-{version}", sigs)
    os.replace(staging, base / str(version))
    return base / str(version)


def serve(tmp_path: Path, run_swap: Any, v1: Sigs, v2: Sigs, extra: str = "") -> tuple[Any, Any]:
    """Serve v1, publish v2; return (swap, v2's first settled event)."""
    base = tmp_path / "m"
    base.mkdir()
    publish(tmp_path, base, 1, v1)
    swap, events = run_swap(yaml_for(base, extra))
    swap.wait_until_available("m", timeout=60)
    publish(tmp_path, base, 2, v2)
    events.wait(lambda evs: any(e.version == 2 and e.state in (State.AVAILABLE, State.ERROR)
                                for e in evs))
    event = next(e for e in events.items
                 if e.version == 2 and e.state in (State.AVAILABLE, State.ERROR))
    return swap, event


def assert_refused(swap: Any, event: Any, error: str) -> None:
    assert (event.state, event.error_type) == (State.ERROR, "SignatureMismatch")
    assert event.error == error
    with swap.acquire("m") as served:
        assert served.version == 1  # the old version keeps serving
    assert [s.state for s in swap.status()["m"]] == [State.ERROR, State.AVAILABLE]


# -- through the daemon ------------------------------------------------------------------------

def test_renamed_input_refused(tmp_path: Path, run_swap: Any) -> None:
    swap, event = serve(tmp_path, run_swap, default(spec("x")), default(spec("z")))
    assert_refused(swap, event, "breaks the 'inputs' contract of served version 1: "
                                "serving_default: input 'x' removed; input 'z' added "
                                "(float32 [?, 1])")


def test_changed_dtype_refused(tmp_path: Path, run_swap: Any) -> None:
    swap, event = serve(tmp_path, run_swap, default(spec("x"), spec("k", "string", [None])),
                        default(spec("x", "int64"), spec("k", "string", [None])))
    assert_refused(swap, event, "breaks the 'inputs' contract of served version 1: "
                                "serving_default: input 'x' dtype float32 → int64")


def test_changed_rank_refused(tmp_path: Path, run_swap: Any) -> None:
    swap, event = serve(tmp_path, run_swap, default(spec("x")),
                        default(spec("x", shape=[None, 1, 1])))
    assert_refused(swap, event, "breaks the 'inputs' contract of served version 1: "
                                "serving_default: input 'x' shape float32 [?, 1] → "
                                "float32 [?, 1, 1]")


def test_removed_signature_refused_by_signatures_contract(tmp_path: Path,
                                                          run_swap: Any) -> None:
    both = default() | {"extra": ([spec("a")], "b")}
    swap, event = serve(tmp_path, run_swap, both, default(), "contract: signatures")
    assert_refused(swap, event, "breaks the 'signatures' contract of served version 1: "
                                "signature 'extra' removed")


def test_removed_output_refused_by_signatures_contract(tmp_path: Path, run_swap: Any) -> None:
    swap, event = serve(tmp_path, run_swap, default(), default(output="score"),
                        "contract: signatures")
    assert_refused(swap, event, "breaks the 'signatures' contract of served version 1: "
                                "serving_default: output 'y' removed")


def test_inputs_contract_allows_removed_signature_and_outputs(tmp_path: Path,
                                                             run_swap: Any) -> None:
    both = default() | {"extra": ([spec("a")], "b")}
    swap, event = serve(tmp_path, run_swap, both, default(spec("x", shape=[4, 1]),
                                                          output="score"))
    assert event.state is State.AVAILABLE, event.error
    swap.wait_until_available("m", version=2, timeout=60)


def test_signatures_contract_allows_additions(tmp_path: Path, run_swap: Any) -> None:
    grown = {"serving_default": ([spec("x")], "y"), "new": ([spec("q", "int32", [3])], "r")}
    _, event = serve(tmp_path, run_swap, default(), grown, "contract: signatures")
    assert event.state is State.AVAILABLE, event.error


def test_contract_off_allows_anything(tmp_path: Path, run_swap: Any) -> None:
    both = default() | {"extra": ([spec("a")], "b")}
    _, event = serve(tmp_path, run_swap, both, default(spec("z", "int64")), "contract: off")
    assert event.state is State.AVAILABLE, event.error


def test_rollback_is_not_checked(tmp_path: Path, exports: Exports, run_swap: Any) -> None:
    """Deleting the newest version rolls back even when it added what the older lacks."""
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 2.0)  # serving_default only
    swap, events = run_swap(yaml_for(base, "contract: signatures"))
    swap.wait_until_available("m", timeout=60)
    grown = default() | {"extra": ([spec("a")], "b")}
    publish(tmp_path, base, 2, grown)
    swap.wait_until_available("m", version=2, timeout=60)
    events.wait_state(1, State.END)
    shutil.rmtree(base / "2")
    events.wait_state(2, State.END)
    with swap.acquire("m") as served:
        assert served.version == 1 and predict(served) == 3.0
    assert State.ERROR not in events.states(1)


# -- what the gate records, and the comparison itself ------------------------------------------

def test_gate_records_signature_io(exports: Exports) -> None:
    verdict = Gate(settle=0.0).check(exports.get(1.0), SERVE, None)
    assert verdict.ready and verdict.meta is not None
    assert verdict.meta.signature_io == (("serving_default", SignatureIO(
        inputs=(("x", TensorMeta("float32", (-1, 1))),),
        outputs=(("y", TensorMeta("float32", (-1, 1))),))),)


def io(inputs: dict[str, TensorMeta], outputs: dict[str, TensorMeta] | None = None
       ) -> SignatureIO:
    return SignatureIO(tuple(sorted(inputs.items())), tuple(sorted((outputs or {}).items())))


F = TensorMeta("float32", (-1, 1))


@pytest.mark.parametrize(("old", "new", "compatible"), [
    ((-1, 1), (8, 1), True),
    ((8, 1), (-1, 1), True),
    ((8, 1), (4, 1), False),
    ((-1, 1), (-1,), False),
    (None, (1, 2, 3), True),
    ((1, 2), None, True),
    ((), (), True),
])
def test_shape_compatibility(old: tuple[int, ...] | None, new: tuple[int, ...] | None,
                             compatible: bool) -> None:
    found = violations([("s", io({"x": TensorMeta("float32", old)}))],
                       [("s", io({"x": TensorMeta("float32", new)}))], "inputs")
    assert (found == []) is compatible


def test_violations_diff() -> None:
    served = [("a", io({"x": F, "z": F}, {"y": F, "p": F})), ("b", io({"x": F}))]
    new = [("a", io({"x": TensorMeta("int64", (-1, 1)), "w": F},
                    {"y": TensorMeta("float64", (-1, 1)), "extra": F}))]
    assert violations(served, new, "inputs") == [
        "a: input 'x' dtype float32 → int64; input 'z' removed; input 'w' added (float32 [?, 1])"]
    assert violations(served, new, "signatures") == [
        "a: input 'x' dtype float32 → int64; input 'z' removed; input 'w' added (float32 [?, 1]); "
        "output 'p' removed; output 'y' dtype float32 → float64",
        "signature 'b' removed"]
    assert violations(served, new, "off") == []
    assert violations(served, served, "signatures") == []
