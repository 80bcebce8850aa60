"""Helpers of the fault matrix: a served model with a checking consumer, FIFOs, odd
exports, and a daemon with a checking consumer inside.

Convention: version v answers `0.5 * 2 + v` (its offset is its number) unless a test says
otherwise (`Scene.expect`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from conftest import TIMEOUT, Consumer, Events, Exports, answer, wait_until
from daemon import DaemonProcess
from modelswap import ModelSwap, State, VersionStatus

TESTS = Path(__file__).resolve().parent.parent


class Scene:
    """Model `name` served from `base`, with a checking consumer running."""

    def __init__(self, swap: ModelSwap, events: Events, base: Path, exports: Exports,
                 name: str = "m") -> None:
        self.swap, self.events, self.base, self.exports, self.name = (
            swap, events, base, exports, name)
        self.expected: dict[int, float] = {}
        self.consumer = Consumer(swap, self.expected, name)

    def expect(self, version: int, offset: float) -> None:
        """Version `version` answers as if its offset were `offset`."""
        self.expected[version] = answer(offset)

    def publish(self, version: int | str, how: str = "atomic",
                offset: float | None = None) -> Path:
        number = int(version)
        offset = float(number) if offset is None else offset
        self.expect(number, offset)
        return self.exports.publish(self.base, version, offset, how=how)

    def status(self, version: int) -> VersionStatus | None:
        return next((s for s in self.swap.status()[self.name] if s.version == version), None)

    def wait_status(self, version: int, state: State, error_type: str | None = None,
                    contains: str = "", timeout: float = TIMEOUT) -> VersionStatus:
        """Wait until `status()` shows `version` in `state` (polled, so it works while a
        hook delays events)."""
        def ok() -> bool:
            s = self.status(version)
            return (s is not None and s.state is state
                    and (error_type is None or s.error_type == error_type)
                    and contains in (s.error or ""))
        try:
            wait_until(ok, timeout)
        except AssertionError:
            raise AssertionError(f"v{version} not {state.value} {error_type or ''} "
                                 f"{contains!r}: {self.swap.status()[self.name]}") from None
        status = self.status(version)
        assert status is not None
        return status

    def newest(self) -> int | None:
        view = self.swap._coordinator.snapshot.get(self.name)
        return view.newest.version if view is not None and view.newest is not None else None

    def serves(self, version: int, timeout: float = TIMEOUT) -> None:
        """Wait until `version` is the newest served one and the consumer got answers
        from it."""
        wait_until(lambda: self.newest() == version, timeout, f"v{version} served")
        seen = self.consumer.calls.get(version, 0)
        wait_until(lambda: self.consumer.calls.get(version, 0) > seen, timeout,
                   f"consumer answers from v{version}")

    def keeps_answering(self, version: int) -> None:
        """`version` is still the one served and still answers."""
        assert self.newest() == version, self.swap.status()[self.name]
        self.serves(version)

    def finish(self) -> None:
        """Stop the consumer: no call may have failed or answered wrong."""
        self.consumer.stop()
        assert self.consumer.failures == [], self.consumer.failures[:5]
        assert self.consumer.total() > 0


def unblock_fifo(path: Path) -> None:
    """Let a reader stuck opening the FIFO `path` go (it then reads end-of-file)."""
    with contextlib.suppress(OSError):  # ENXIO: no reader; ENOENT: gone
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


@contextlib.contextmanager
def fifo_valve(path: Path, after: float = 30.0) -> Iterator[None]:
    """A safety valve for a FIFO that code holding the GIL might (wrongly) block on:
    nothing in this process could let it go then, so a helper process opens it for
    writing after `after` seconds and a regression fails the test instead of hanging
    the suite."""
    helper = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import os, time
        time.sleep({after})
        try:
            os.close(os.open({str(path)!r}, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
        """)])
    try:
        yield
    finally:
        helper.kill()
        helper.wait()


def stage(exports: Exports, offset: float, where: Path) -> Path:
    """A private copy of the export answering `offset`, to damage before publishing."""
    shutil.copytree(exports.get(offset), where)
    return where


def export_tf1_model(path: Path, tags: tuple[str, ...] = ("serve",), add: float = 0.0, *,
                     signature: str = "serving_default", resource: bool = True) -> Path:
    """A TF1 `SavedModelBuilder` model computing `y = x + v + add` with `v` = 1.0, a
    resource variable or (resource=False) a TF1 reference variable."""
    import tensorflow as tf

    v1 = tf.compat.v1
    builder = v1.saved_model.Builder(str(path))
    with tf.Graph().as_default(), v1.Session() as sess:
        x = v1.placeholder(tf.float32, [None, 1], name="x")
        var = v1.get_variable("v", initializer=tf.constant(1.0), use_resource=resource)
        y = tf.identity(x + var + add, name="y")
        sess.run(v1.global_variables_initializer())
        sig = v1.saved_model.predict_signature_def({"x": x}, {"y": y})
        builder.add_meta_graph_and_variables(sess, list(tags),
                                             signature_def_map={signature: sig})
    builder.save()
    return path


def export_sharded(path: Path, offset: float, shards: int = 4) -> Path:
    """`y = 0.5 x + offset` with its variables split over several data files."""
    import tensorflow as tf

    class Sharded(tf.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.slope = tf.Variable(0.5)
            self.offset = tf.Variable(offset)
            self.padding = [tf.Variable(tf.zeros([64])) for _ in range(shards)]

        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])  # type: ignore[untyped-decorator]
        def __call__(self, x: Any) -> dict[str, Any]:
            pad = tf.add_n([tf.reduce_sum(p) for p in self.padding])
            return {"y": x * self.slope + self.offset + 0.0 * pad}

    module = Sharded()
    options = tf.saved_model.SaveOptions(
        experimental_sharding_callback=tf.train.experimental.MaxShardSizePolicy(
            max_shard_size=300))
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.__call__},
                        options=options)
    return path


# -- the real daemon, with a consumer inside that checks every answer ----------------------

class CheckedDaemon(DaemonProcess):
    """A daemon whose config (see `daemon_config`) runs `faults.daemoncode:check`: a
    consumer calling model `m` in a loop, keeping a JSON report of calls and failures."""

    def __init__(self, config: Path, tmp: Path, report: Path | None = None,
                 **kwargs: Any) -> None:
        report = report or tmp / "report.json"
        env = {"CHECK_REPORT": str(report), **kwargs.pop("env", {})}
        super().__init__(config, tmp, env=env, **kwargs)
        self.report_path = report

    def report(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.report_path.read_text())
        except (OSError, ValueError):
            return {"calls": {}, "failures": []}
        return data

    def answered(self, version: int) -> int:
        return int(self.report()["calls"].get(str(version), 0))

    def wait_answers(self, version: int) -> None:
        """Wait for new answers from `version` (more than it has now)."""
        seen = self.answered(version)
        wait_until(lambda: self.answered(version) > seen, TIMEOUT,
                   f"the daemon's consumer answering from v{version}")


def daemon_config(path: Path, models: dict[str, Path], top: str = "",
                  model_extra: str | dict[str, str] = "") -> Path:
    """Write a config serving `models` (name → base path) with the checking consumer;
    `model_extra`: YAML for every model, or per model name."""
    text = "models:\n"
    for name, base in models.items():
        extra = model_extra if isinstance(model_extra, str) else model_extra.get(name, "")
        text += f"  - name: {name}\n    base_path: {base}\n"
        text += "".join(f"    {line}\n" for line in extra.splitlines() if line)
    text += (f"consumers: ['faults.daemoncode:check']\npython_path: [{TESTS}]\n"
             "service: {stop_timeout: 10s}\n" + top)
    path.write_text(text)
    return path


def no_failures(report: dict[str, Any]) -> None:
    assert report["failures"] == [], report["failures"][:5]
