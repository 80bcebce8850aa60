"""Warmup before publish: TF Serving's warmup file, user functions, automatic warmup.

Real exports, real `tf.saved_model.load`. The counting model's signatures increment a
tf.Variable per call, so reading it from the published model proves what ran before
the version became AVAILABLE (nothing else calls it).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from conftest import Exports, predict, yaml_for
from modelswap import ConfigError, State, WarmupFailed
from modelswap.config import parse_config
from modelswap.load.job import load_version
from modelswap.load.warmup import MAX_RECORDS, WARMUP_FILE, run_warmup, synthesize_inputs

SERVE = frozenset({"serve"})


def export_counting(path: Path) -> Path:
    """Three signatures, each counting its calls in a variable:
    `serving_default(x: float32 [?, 1])`, `other(n: int64 [?], s: string [?, 2], b: bool [3])`
    and `unknown(x: float32, unknown rank)` (auto warmup cannot synthesize that one)."""
    import tensorflow as tf

    class Counting(tf.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.default_calls = tf.Variable(0, dtype=tf.int64)
            self.other_calls = tf.Variable(0, dtype=tf.int64)
            self.unknown_calls = tf.Variable(0, dtype=tf.int64)

        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
        def default(self, x: Any) -> Any:
            self.default_calls.assign_add(1)
            return {"y": x * 2.0}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.int64, name="n"),
                                      tf.TensorSpec([None, 2], tf.string, name="s"),
                                      tf.TensorSpec([3], tf.bool, name="b")])
        def other(self, n: Any, s: Any, b: Any) -> Any:
            self.other_calls.assign_add(1)
            return {"n": n + 1, "len": tf.strings.length(s), "any": tf.reduce_any(b)}

        @tf.function(input_signature=[tf.TensorSpec(None, tf.float32, name="x")])
        def unknown(self, x: Any) -> Any:
            self.unknown_calls.assign_add(1)
            return {"y": x}

    module = Counting()
    tf.saved_model.save(module, str(path), signatures={
        "serving_default": module.default, "other": module.other, "unknown": module.unknown})
    return path


@pytest.fixture(scope="module")
def counting(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_counting(tmp_path_factory.mktemp("counting") / "model")


def counts(model: Any) -> tuple[int, int, int]:
    return (int(model.default_calls.numpy()), int(model.other_calls.numpy()),
            int(model.unknown_calls.numpy()))


def publish(source: Path, base: Path, version: int) -> Path:
    """Copy `source` beside `base`, then rename it in as `version`."""
    staging = base.parent / f".staging-{base.name}-{version}"
    shutil.copytree(source, staging)
    os.replace(staging, base / str(version))
    return base / str(version)


def write_requests(version_dir: Path, records: list[bytes]) -> None:
    import tensorflow as tf

    target = version_dir / WARMUP_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(target)) as writer:
        for record in records:
            writer.write(record)


def predict_record(signature: str = "serving_default", **inputs: Any) -> bytes:
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "m"
    request.model_spec.signature_name = signature
    for name, value in (inputs or {"x": [[1.0]]}).items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value, dtype=tf.float32))
    return prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request)).SerializeToString()


def classify_record() -> bytes:
    from tensorflow_serving.apis import classification_pb2, prediction_log_pb2

    request = classification_pb2.ClassificationRequest()
    request.input.example_list.examples.add()
    return prediction_log_pb2.PredictionLog(
        classify_log=prediction_log_pb2.ClassifyLog(request=request)).SerializeToString()


def fresh_copy(source: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(source, tmp_path / "v"))


# -- user warmup functions, referenced from configs as "test_warmup:<name>" -------------------

WARMED: list[Any] = []
RELEASE = threading.Event()


def warm_record(model: Any) -> None:
    import tensorflow as tf

    WARMED.append(model)
    model.signatures["serving_default"](x=tf.constant([[1.0]]))


def fail_on_offset_3(model: Any) -> None:
    if float(model.offset.numpy()) == 3.0:
        raise RuntimeError("bad weights")


def block_on_offset_3(model: Any) -> None:
    if float(model.offset.numpy()) == 3.0:
        RELEASE.wait(60)


# -- through the daemon ------------------------------------------------------------------------

def test_auto_warmup_calls_every_signature_before_available(
        tmp_path: Path, counting: Path, run_swap: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    publish(counting, base, 1)
    swap, events = run_swap(yaml_for(base))
    assert swap.wait_until_available("m", timeout=60) == 1
    with swap.acquire("m") as served:
        # one call each, made before the version was published; `unknown` cannot be
        # synthesized (unknown rank) and is skipped, not an error
        assert counts(served.model) == (1, 1, 0)
    available = events.wait_state(1, State.AVAILABLE)
    assert "warmup" in dict(available.durations)


def test_warmup_file_replayed_before_available(
        tmp_path: Path, counting: Path, run_swap: Any) -> None:
    source = fresh_copy(counting, tmp_path)
    write_requests(source, [predict_record(), predict_record(""),  # "" → serving_default
                            predict_record(x=[[1.0], [2.0]]), classify_record()])
    base = tmp_path / "m"
    base.mkdir()
    publish(source, base, 1)
    swap, _ = run_swap(yaml_for(base))
    swap.wait_until_available("m", timeout=60)
    with swap.acquire("m") as served:
        # the three predict requests ran; the file replaces automatic warmup
        assert counts(served.model) == (3, 0, 0)


def test_user_function_warmup(tmp_path: Path, counting: Path, run_swap: Any) -> None:
    WARMED.clear()
    base = tmp_path / "m"
    base.mkdir()
    publish(counting, base, 1)
    swap, _ = run_swap(yaml_for(base, "warmup: test_warmup:warm_record"))
    swap.wait_until_available("m", timeout=60)
    with swap.acquire("m") as served:
        assert len(WARMED) == 1 and WARMED[0] is served.model
        assert counts(served.model) == (1, 0, 0)  # only what the function did


def test_warmup_off(tmp_path: Path, counting: Path, run_swap: Any) -> None:
    source = fresh_copy(counting, tmp_path)
    write_requests(source, [predict_record()])  # `off` ignores the file too
    base = tmp_path / "m"
    base.mkdir()
    publish(source, base, 1)
    swap, _ = run_swap(yaml_for(base, "warmup: off"))
    swap.wait_until_available("m", timeout=60)
    with swap.acquire("m") as served:
        assert counts(served.model) == (0, 0, 0)


def test_failed_warmup_keeps_old_version(tmp_path: Path, exports: Exports,
                                         run_swap: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 2.0)
    swap, events = run_swap(yaml_for(base, "warmup: test_warmup:fail_on_offset_3"))
    swap.wait_until_available("m", timeout=60)
    exports.publish(base, 2, 3.0)
    error = events.wait_state(2, State.ERROR)
    assert error.error_type == "WarmupFailed"
    assert error.error == "warmup test_warmup:fail_on_offset_3 raised RuntimeError: bad weights"
    assert events.states(2) == [State.LOADING, State.ERROR]
    with swap.acquire("m") as served:
        assert served.version == 1 and predict(served) == 3.0
    status = {s.version: s for s in swap.status()["m"]}
    assert status[1].state is State.AVAILABLE
    assert (status[2].state, status[2].error_type) == (State.ERROR, "WarmupFailed")


def test_timed_out_warmup_keeps_old_version(tmp_path: Path, exports: Exports,
                                            run_swap: Any) -> None:
    RELEASE.clear()
    base = tmp_path / "m"
    base.mkdir()
    exports.publish(base, 1, 2.0)
    try:
        swap, events = run_swap(yaml_for(
            base, "warmup: test_warmup:block_on_offset_3\nwarmup_timeout: 1s"))
        swap.wait_until_available("m", timeout=60)
        exports.publish(base, 2, 3.0)
        error = events.wait_state(2, State.ERROR)
        assert error.error_type == "WarmupFailed"
        assert error.error is not None and "warmup_timeout (1s)" in error.error
        with swap.acquire("m") as served:
            assert served.version == 1 and predict(served) == 3.0
        assert [s.state for s in swap.status()["m"]] == [State.ERROR, State.AVAILABLE]
    finally:
        RELEASE.set()  # let the abandoned warmup thread finish


# -- run_warmup on a loaded model --------------------------------------------------------------

def test_auto_warmup_report(counting: Path) -> None:
    model = load_version(counting, SERVE).model
    report = run_warmup(model, counting, "auto", 60)
    assert (report.kind, report.calls) == ("auto", 2)
    assert report.skipped == ["signature 'unknown': input 'x' has an unknown rank"]
    assert counts(model) == (1, 1, 0)


def test_auto_warmup_tolerates_rejected_inputs_only(tmp_path: Path) -> None:
    """Made-up inputs an op rejects (InvalidArgumentError) skip the signature; any other
    error fails the warmup."""
    import tensorflow as tf

    def export(name: str, fn: Any) -> Path:
        function = tf.function(fn, input_signature=[tf.TensorSpec([], tf.string, name="s")])
        tf.saved_model.save(tf.Module(), str(tmp_path / name),
                            signatures={"serving_default": function})
        return tmp_path / name

    jpeg = export("jpeg", lambda s: {"image": tf.io.decode_jpeg(s)})
    report = run_warmup(load_version(jpeg, SERVE).model, jpeg, "auto", 60)
    assert report.calls == 0 and len(report.skipped) == 1
    assert report.skipped[0].startswith(
        "signature 'serving_default' rejected the synthesized inputs: ")
    reader = export("reader", lambda s: {"data": tf.io.read_file(
        tf.strings.join([str(tmp_path / "missing-"), s]))})
    with pytest.raises(WarmupFailed, match="auto warmup of signature 'serving_default' raised "
                                           "NotFoundError"):
        run_warmup(load_version(reader, SERVE).model, reader, "auto", 60)


def export_two_names(path: Path) -> Path:
    """`serving_default` and `serve` are one function (as in a Keras 3 export: the saver
    wraps each name in its own wrapper); `double` is another function with the same body."""
    import tensorflow as tf

    class TwoNames(tf.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.calls = tf.Variable(0, dtype=tf.int64)
            self.other = tf.Variable(0, dtype=tf.int64)

        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
        def serve(self, x: Any) -> Any:
            self.calls.assign_add(1)
            return {"y": x * 2.0}

        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
        def double(self, x: Any) -> Any:
            self.other.assign_add(1)
            return {"y": x * 2.0}

    module = TwoNames()
    tf.saved_model.save(module, str(path), signatures={
        "serving_default": module.serve, "serve": module.serve, "double": module.double})
    return path


def test_names_of_one_function_are_warmed_once_and_served_as_one(tmp_path: Path) -> None:
    import tensorflow as tf

    path = export_two_names(tmp_path / "two")
    loaded = load_version(path, SERVE)
    signatures = loaded.signatures
    assert sorted(signatures) == ["double", "serve", "serving_default"]
    assert signatures["serve"] is signatures["serving_default"]  # one function, one object
    assert signatures["double"] is not signatures["serving_default"]  # other variables
    report = run_warmup(loaded.model, path, "auto", 60, signatures=signatures)
    assert (report.kind, report.calls, report.skipped) == ("auto", 2, [])
    model = loaded.model
    assert (int(model.calls.numpy()), int(model.other.numpy())) == (1, 1)
    assert float(signatures["serve"](x=tf.constant([[2.0]]))["y"][0][0]) == 4.0
    # without the loader's mapping, run_warmup merges the model's own signatures the same way
    again = run_warmup(model, path, "auto", 60)
    assert again.calls == 2 and int(model.calls.numpy()) == 3  # 1 + the call above + 1


def test_one_function_through_the_daemon(tmp_path: Path, run_swap: Any) -> None:
    base = tmp_path / "m"
    base.mkdir()
    publish(export_two_names(tmp_path / "two"), base, 1)
    swap, _ = run_swap(yaml_for(base))
    swap.wait_until_available("m", timeout=60)
    with swap.acquire("m") as served:
        assert int(served.model.calls.numpy()) == 1  # warmed once for both names
        assert served.signatures["serve"] is served.signatures["serving_default"]


def test_synthesized_inputs(counting: Path) -> None:
    model = load_version(counting, SERVE).model
    inputs = synthesize_inputs(model.signatures["other"])
    assert not isinstance(inputs, str)
    assert {k: (v.dtype.name, v.shape.as_list()) for k, v in inputs.items()} == {
        "n": ("int64", [1]), "s": ("string", [1, 2]), "b": ("bool", [3])}
    assert inputs["s"].numpy().tolist() == [[b"", b""]]
    assert not inputs["b"].numpy().any() and not inputs["n"].numpy().any()


def test_warmup_file_iterations_and_skipped_kinds(tmp_path: Path, counting: Path) -> None:
    source = fresh_copy(counting, tmp_path)
    write_requests(source, [predict_record(), classify_record(), predict_record()])
    model = load_version(source, SERVE).model
    report = run_warmup(model, source, "auto", 60, iterations=3)
    assert (report.kind, report.calls) == ("file", 6)
    assert report.skipped == ["1 classify_log record(s): only predict_log is replayed"]
    assert counts(model) == (6, 0, 0)


def test_bad_warmup_records(tmp_path: Path, counting: Path) -> None:
    source = fresh_copy(counting, tmp_path)
    model = load_version(source, SERVE).model
    cases = [
        ([b"\xff not a prediction log"], "record 0: not a PredictionLog"),
        ([predict_record(), predict_record("nope")],
         "record 1: no signature 'nope'; the model has ['other', 'serving_default', 'unknown']"),
        ([predict_record(z=[[1.0]])], "record 0 (signature 'serving_default'): TypeError"),
        ([predict_record()] * (MAX_RECORDS + 1), f"more than {MAX_RECORDS} records"),
    ]
    for records, message in cases:
        write_requests(source, records)
        with pytest.raises(WarmupFailed, match=re.escape(message)):
            run_warmup(model, source, "auto", 60)
    (source / WARMUP_FILE).write_bytes(b"garbage, not a TFRecord file")
    with pytest.raises(WarmupFailed, match="not a valid TFRecord file"):
        run_warmup(model, source, "auto", 60)


def test_warmup_file_without_serving_api(tmp_path: Path, counting: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    source = fresh_copy(counting, tmp_path)
    write_requests(source, [predict_record()])
    model = load_version(source, SERVE).model
    monkeypatch.setitem(sys.modules, "tensorflow_serving.apis", None)  # as if not installed
    with pytest.raises(WarmupFailed, match=r"tensorflow-serving-api protos are not installed: "
                                           r"pip install 'modelswap\[tfserving\]'"):
        run_warmup(model, source, "auto", 60)
    assert counts(model) == (0, 0, 0)


def test_warmup_function_import_error(counting: Path) -> None:
    model = load_version(counting, SERVE).model
    with pytest.raises(WarmupFailed, match="warmup no_such_module_xyz:run: cannot import it: "
                                           "ModuleNotFoundError"):
        run_warmup(model, counting, "no_such_module_xyz:run", 60)
    with pytest.raises(WarmupFailed, match="warmup test_warmup:nothing_here: cannot import it: "
                                           "AttributeError"):
        run_warmup(model, counting, "test_warmup:nothing_here", 60)


# -- configuration ---------------------------------------------------------------------------------

def model_config(extra: str) -> Any:
    return parse_config(yaml_for(Path("/srv/m"), extra)).models[0]


def test_config_defaults_and_forms() -> None:
    default = model_config("")
    assert (default.warmup, default.warmup_timeout, default.contract) == ("auto", 60, "inputs")
    assert model_config("warmup: off").warmup == "off"  # YAML's bare off is false
    assert model_config("warmup: 'off'").warmup == "off"
    assert model_config("warmup: pkg.mod:Cls.warm").warmup == "pkg.mod:Cls.warm"
    assert model_config("warmup_timeout: 2m").warmup_timeout == 120
    assert model_config("contract: off").contract == "off"
    assert model_config("contract: signatures").contract == "signatures"


@pytest.mark.parametrize(("extra", "message"), [
    ("warmup: on", "models[0].warmup: expected auto, off or 'pkg.module:callable', got True"),
    ("warmup: nonsense", "models[0].warmup: expected auto, off or 'pkg.module:callable', "
                         "got 'nonsense'"),
    ("warmup_timeout: 0", "models[0].warmup_timeout: Input should be greater than 0"),
    ("contract: outputs", "models[0].contract: Input should be 'inputs', 'signatures' or 'off'"),
])
def test_config_errors(extra: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        model_config(extra)
    assert message in str(caught.value)
