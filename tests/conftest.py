"""Shared test helpers: real SavedModels exported at test time, a running ModelSwap, waits."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from modelswap import ModelEvent, ModelSwap, State
from modelswap.cli.demo import export_linear
from modelswap.config import parse_config
from modelswap.service.logs import quiet_tensorflow

quiet_tensorflow()

TIMEOUT = 60.0


def point_aws_at(monkeypatch: pytest.MonkeyPatch, endpoint: str, key: str, secret: str) -> None:
    """Set the standard AWS variables (what users set) to `endpoint` and these keys, and
    clear those that would override them."""
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(var, raising=False)
    for var, value in (("AWS_ENDPOINT_URL", endpoint), ("AWS_ACCESS_KEY_ID", key),
                       ("AWS_SECRET_ACCESS_KEY", secret), ("AWS_REGION", "us-east-1")):
        monkeypatch.setenv(var, value)


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """moto's S3/SQS server on 127.0.0.1 (a free port) for the block; yields its URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


class Exports:
    """Exports `y = 0.5 x + offset` once per offset; hands out copies."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()

    def get(self, offset: float) -> Path:
        path = self.root / f"linear_{offset:g}"
        with self._lock:
            if not path.exists():
                export_linear(path, 0.5, offset)
        return path

    def publish(self, base: Path, version: int | str, offset: float, *,
                how: str = "atomic") -> Path:
        """Write version `version` answering 0.5 x + offset into `base`.

        atomic: copy to a staging folder beside `base`, then rename it in.
        copy: copy in place, saved_model.pb first (fresh mtimes, like `cp -r`).
        """
        source = self.get(offset)
        dest = base / str(version)
        if how == "atomic":
            staging = base.parent / f".staging-{base.name}-{version}-{time.monotonic_ns()}"
            shutil.copytree(source, staging)
            os.replace(staging, dest)
        else:
            dest.mkdir(parents=True)
            shutil.copyfile(source / "saved_model.pb", dest / "saved_model.pb")
            shutil.copytree(source / "variables", dest / "variables", copy_function=shutil.copyfile)
        return dest


@pytest.fixture(autouse=True)
def _structlog_left_as_found() -> Iterator[None]:
    """A test that configures structlog (capture_logs does) leaves it as it found it:
    otherwise structlog's defaults print every later event, debug ones from background
    threads included, into the next tests' captured stdout."""
    configured = structlog.is_configured()
    yield
    if not configured and structlog.is_configured():
        structlog.reset_defaults()


@pytest.fixture(scope="session")
def exports(tmp_path_factory: pytest.TempPathFactory) -> Exports:
    return Exports(tmp_path_factory.mktemp("exports"))


def predict(served: Any, x: float = 2.0) -> float:
    import tensorflow as tf

    return float(served.signatures["serving_default"](x=tf.constant([[x]]))["y"][0][0])


class Events:
    """Collects ModelEvents; `wait(pred)` blocks until pred(events) is true."""

    def __init__(self) -> None:
        self.items: list[ModelEvent] = []
        self._cond = threading.Condition()

    def __call__(self, event: ModelEvent) -> None:
        with self._cond:
            self.items.append(event)
            self._cond.notify_all()

    def wait(self, pred: Callable[[list[ModelEvent]], bool], timeout: float = TIMEOUT) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: pred(self.items), timeout):
                raise AssertionError(f"condition not met in {timeout}s; events: "
                                     + "; ".join(f"{e.model} v{e.version} {e.state.value}"
                                                 f" {e.error_type or ''} {e.error or ''}"
                                                 for e in self.items))

    def wait_state(self, version: int, state: State, model: str | None = None,
                   timeout: float = TIMEOUT) -> ModelEvent:
        self.wait(lambda evs: any(e.version == version and e.state is state
                                  and (model is None or e.model == model) for e in evs), timeout)
        return next(e for e in self.items if e.version == version and e.state is state
                    and (model is None or e.model == model))

    def states(self, version: int, model: str | None = None) -> list[State]:
        with self._cond:
            return [e.state for e in self.items if e.version == version
                    and (model is None or e.model == model)]


def yaml_for(base: Path, extra: str = "", top: str = "", name: str = "m") -> str:
    model = f"models:\n  - name: {name}\n    base_path: {base}\n"
    model += "".join(f"    {line}\n" for line in extra.splitlines() if line)
    return model + top


@pytest.fixture
def run_swap() -> Iterator[Callable[..., tuple[ModelSwap, Events]]]:
    """Start a ModelSwap from YAML text; stopped at teardown."""
    started: list[ModelSwap] = []

    def start(text: str) -> tuple[ModelSwap, Events]:
        swap = ModelSwap(parse_config(text))
        events = Events()
        swap.subscribe(events)
        started.append(swap.start())
        return swap, events

    yield start
    for swap in started:
        swap.stop()


def wait_until(pred: Callable[[], bool], timeout: float = TIMEOUT, what: str = "") -> None:
    """Poll `pred` (for conditions no event announces, e.g. garbage collection)."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or pred}")
        time.sleep(0.02)


def wait_reason(swap: ModelSwap, version: int, text: str, model: str = "m",
                state: State = State.WAITING) -> None:
    """Wait until the status of `version` is `state` with `text` in its reason (a reason
    that changes within a state is status only, never an event)."""
    wait_until(lambda: any(s.version == version and s.state is state and text in (s.error or "")
                           for s in swap.status().get(model, ())),
               what=f"v{version} {state.value} with {text!r}")


def export_tf1(path: Path, graphs: dict[tuple[str, ...], float]) -> Path:
    """A TF1 `SavedModelBuilder` model, written non-atomically: one MetaGraph per tag set
    computing `y = x + v + add`, with `v` a resource variable holding 1.0."""
    import tensorflow as tf

    v1 = tf.compat.v1
    builder = v1.saved_model.Builder(str(path))
    first = True
    for tags, add in graphs.items():
        with tf.Graph().as_default(), v1.Session() as sess:
            x = v1.placeholder(tf.float32, [None, 1], name="x")
            var = v1.get_variable("v", initializer=tf.constant(1.0), use_resource=True)
            y = tf.identity(x + var + add, name="y")
            sess.run(v1.global_variables_initializer())
            signature = v1.saved_model.predict_signature_def({"x": x}, {"y": y})
            signatures = {"serving_default": signature}
            if first:
                builder.add_meta_graph_and_variables(sess, list(tags),
                                                     signature_def_map=signatures)
                first = False
            else:
                builder.add_meta_graph(list(tags), signature_def_map=signatures)
    builder.save()
    return path


def answer(offset: float) -> float:
    return 0.5 * 2.0 + offset


class Consumer(threading.Thread):
    """Calls the newest served version in a loop and checks every answer."""

    def __init__(self, swap: ModelSwap, expected: dict[int, float], name: str = "m") -> None:
        super().__init__(daemon=True, name=f"test-consumer-{name}")
        self.swap, self.expected, self.model = swap, expected, name
        self.calls: dict[int, int] = {}
        self.failures: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                with self.swap.acquire(self.model) as served:
                    y = predict(served)
                    want = self.expected.get(served.version, answer(served.version))
                    if abs(y - want) > 1e-6:
                        self.failures.append(f"v{served.version} gave {y}, expected {want}")
                    self.calls[served.version] = self.calls.get(served.version, 0) + 1
            except Exception as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
            time.sleep(0.001)  # pacing, so loads and the coordinator get the GIL too

    def total(self) -> int:
        return sum(self.calls.values())

    def stop(self) -> None:
        self.halt.set()
        self.join(30)
