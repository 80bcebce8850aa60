"""Warm a freshly loaded version up before it is published.

The first call of a loaded signature pays for graph optimisation and kernel set-up
(measured: 0.89 s against 0.056 s for later calls of a ResNet50); warmup moves that
cost off the consumers. In order of precedence (`warmup: off` skips all of them):

1. `assets.extra/tf_serving_warmup_requests` (TF Serving's format: a TFRecord file of
   `PredictionLog` protos, at most 1000 records): each predict request is replayed
   `iterations` times against its signature. Needs the `tensorflow-serving-api`
   protos (`pip install 'modelswap[tfserving]'`). Other log types are skipped, logged.
2. `warmup: "pkg.module:callable"`: called with the loaded model.
3. `warmup: auto`: every distinct signature function is called once with inputs
   synthesized from its TensorSpecs (unknown dimensions → 1; zeros, empty strings,
   False). Names that are one function (`serve` and `serving_default` of a Keras export,
   see `signatures.distinct`) are called once, under `serving_default` when it is one.

Anything that raises, or runs longer than `timeout`, is a `WarmupFailed`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelswap.errors import WarmupFailed
from modelswap.load.signatures import DEFAULT_SIGNATURE, distinct
from modelswap.logger import get_logger

__all__ = ["MAX_RECORDS", "WARMUP_FILE", "WarmupReport", "run_warmup", "synthesize_inputs"]

log = get_logger("modelswap.warmup")

WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
MAX_RECORDS = 1000  # TF Serving's WarmupConsts::kMaxNumRecords


@dataclass
class WarmupReport:
    """What a warmup did: `kind` is `file`, `function`, `auto` or `off`; `calls` counts
    signature calls made, `skipped` says what was left out and why."""

    kind: str
    calls: int = 0
    skipped: list[str] = field(default_factory=list)


def run_warmup(model: Any, path: Path, warmup: str, timeout: float, *,
               iterations: int = 1, logger: Any = log,
               signatures: Mapping[str, Any] | None = None) -> WarmupReport:
    """Warm up `model` (loaded from `path`) as `warmup` says ("auto", "off" or
    "pkg.module:callable"), within `timeout` seconds; raise `WarmupFailed` otherwise.

    `signatures`: the functions consumers will be handed, by name (default: the model's
    signatures, with names that are one function merged: `signatures.distinct`)."""
    if warmup == "off":
        return WarmupReport("off")
    if signatures is None:
        signatures = distinct(getattr(model, "signatures", None) or {})
    found = signatures
    requests = path / WARMUP_FILE
    if requests.is_file():
        report = WarmupReport("file")
        work: Callable[[], None] = lambda: _replay(found, requests, iterations, report)  # noqa: E731
    elif warmup != "auto":
        report = WarmupReport("function")
        work = lambda: _call_function(model, warmup, report)  # noqa: E731
    else:
        report = WarmupReport("auto")
        work = lambda: _auto(found, report)  # noqa: E731
    _within(timeout, work, report.kind)
    for what in report.skipped:
        logger.info("warmup_skipped", kind=report.kind, detail=what)
    return report


def _within(timeout: float, work: Callable[[], None], kind: str) -> None:
    """Run `work` on a helper thread and wait at most `timeout` for it.

    Python cannot interrupt a thread, so a warmup that overruns is abandoned, not
    stopped: its daemon thread keeps running (and keeps a reference to the model)
    until the stuck call returns, if ever. The version is reported as failed at once,
    and the process can still exit.
    """
    outcome: list[BaseException] = []
    done = threading.Event()

    def target() -> None:
        try:
            work()
        except BaseException as exc:
            outcome.append(exc)
        finally:
            done.set()

    started = time.monotonic()
    threading.Thread(target=target, name="modelswap-warmup", daemon=True).start()
    if not done.wait(timeout):
        raise WarmupFailed(f"{kind} warmup did not finish within warmup_timeout "
                           f"({timeout:g}s); abandoned it")
    if outcome:
        exc = outcome[0]
        if isinstance(exc, WarmupFailed):
            raise WarmupFailed(str(exc))
        raise WarmupFailed(f"{kind} warmup failed after {time.monotonic() - started:.3g}s: "
                           f"{type(exc).__name__}: {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:500] if text else ""


# -- TF Serving's warmup file ----------------------------------------------------------------

def _read_records(requests: Path) -> list[bytes]:
    import tensorflow as tf

    records: list[bytes] = []
    try:
        for record in tf.data.TFRecordDataset(str(requests)).take(MAX_RECORDS + 1):
            records.append(bytes(record.numpy()))
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as exc:
        raise WarmupFailed(f"{WARMUP_FILE} is not a valid TFRecord file: "
                           f"{_first_line(exc)}") from None
    if len(records) > MAX_RECORDS:
        raise WarmupFailed(f"{WARMUP_FILE} has more than {MAX_RECORDS} records "
                           f"(TF Serving's limit)")
    return records


def _replay(signatures: Mapping[str, Any], requests: Path, iterations: int,
            report: WarmupReport) -> None:
    try:
        from tensorflow_serving.apis import prediction_log_pb2
    except ImportError:
        raise WarmupFailed(
            f"{WARMUP_FILE} exists but the tensorflow-serving-api protos are not installed: "
            "pip install 'modelswap[tfserving]' (or set warmup: off)") from None
    import tensorflow as tf

    calls: list[tuple[int, str, Any, dict[str, Any]]] = []
    skipped: dict[str, int] = {}
    for index, record in enumerate(_read_records(requests)):
        entry = prediction_log_pb2.PredictionLog()
        try:
            entry.ParseFromString(record)
        except Exception as exc:
            raise WarmupFailed(f"{WARMUP_FILE} record {index}: not a PredictionLog: "
                               f"{_first_line(exc)}") from None
        kind = entry.WhichOneof("log_type")
        if kind != "predict_log":
            skipped[kind or "empty"] = skipped.get(kind or "empty", 0) + 1
            continue
        request = entry.predict_log.request
        name = request.model_spec.signature_name or DEFAULT_SIGNATURE
        fn = signatures.get(name)
        if fn is None:
            raise WarmupFailed(f"{WARMUP_FILE} record {index}: no signature {name!r}; "
                               f"the model has {sorted(signatures)}")
        try:
            inputs = {key: tf.constant(tf.make_ndarray(tensor))
                      for key, tensor in request.inputs.items()}
        except Exception as exc:
            raise WarmupFailed(f"{WARMUP_FILE} record {index}: bad input tensor: "
                               f"{type(exc).__name__}: {_first_line(exc)}") from None
        calls.append((index, name, fn, inputs))
    report.skipped += [f"{count} {kind} record(s): only predict_log is replayed"
                       for kind, count in sorted(skipped.items())]
    for index, name, fn, inputs in calls:
        for _ in range(iterations):
            try:
                fn(**inputs)
            except Exception as exc:
                raise WarmupFailed(f"{WARMUP_FILE} record {index} (signature {name!r}): "
                                   f"{type(exc).__name__}: {_first_line(exc)}") from None
            report.calls += 1


# -- a user function -------------------------------------------------------------------------

def _call_function(model: Any, spec: str, report: WarmupReport) -> None:
    from modelswap.usercode import resolve

    try:
        fn = resolve(spec)
    except Exception as exc:
        raise WarmupFailed(f"warmup {spec}: cannot import it: "
                           f"{type(exc).__name__}: {_first_line(exc)}") from None
    try:
        fn(model)
    except Exception as exc:
        raise WarmupFailed(f"warmup {spec} raised {type(exc).__name__}: "
                           f"{_first_line(exc)}") from None
    report.calls += 1


# -- automatic -------------------------------------------------------------------------------

def synthesize_inputs(fn: Any) -> dict[str, Any] | str:
    """Keyword inputs for a signature function from its TensorSpecs, or why there are none."""
    import tensorflow as tf

    args, kwargs = getattr(fn, "structured_input_signature", None) or ((), {})
    if args:
        return "takes positional inputs"
    inputs: dict[str, Any] = {}
    for name, spec in kwargs.items():
        if not isinstance(spec, tf.TensorSpec):
            return f"input {name!r} is a {type(spec).__name__}, not a plain tensor"
        if spec.shape.rank is None:
            return f"input {name!r} has an unknown rank"
        shape = [1 if d is None else d for d in spec.shape.as_list()]
        dtype = spec.dtype
        if dtype == tf.string:
            inputs[name] = tf.fill(shape, "")
        elif dtype == tf.bool:
            inputs[name] = tf.zeros(shape, tf.bool)
        elif dtype.is_numpy_compatible and (dtype.is_floating or dtype.is_integer
                                            or dtype.is_complex):
            inputs[name] = tf.zeros(shape, dtype)
        else:
            return f"input {name!r} has dtype {dtype.name}"
    return inputs


def _auto(signatures: Mapping[str, Any], report: WarmupReport) -> None:
    import tensorflow as tf

    names: dict[int, list[str]] = {}  # one entry per distinct function object
    for name, fn in sorted(signatures.items()):
        names.setdefault(id(fn), []).append(name)
    for group in names.values():
        name = DEFAULT_SIGNATURE if DEFAULT_SIGNATURE in group else min(group)
        fn = signatures[name]
        inputs = synthesize_inputs(fn)
        if isinstance(inputs, str):
            report.skipped.append(f"signature {name!r}: {inputs}")
            continue
        try:
            fn(**inputs)
        except tf.errors.InvalidArgumentError as exc:
            # The model rejected made-up data (an empty string is no JPEG, a 1-pixel image
            # is too small for the kernel): not evidence the version is broken. The
            # signature still ran its graph set-up, so it is mostly warm.
            report.skipped.append(f"signature {name!r} rejected the synthesized inputs: "
                                  f"{_first_line(exc)}")
            continue
        except Exception as exc:
            raise WarmupFailed(f"auto warmup of signature {name!r} raised "
                               f"{type(exc).__name__}: {_first_line(exc)}") from None
        report.calls += 1
