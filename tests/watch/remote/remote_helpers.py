"""Helpers for the remote mirror tests: tiny SavedModels, condition waits, a TCP proxy.

The proxy sits between obstore and moto's real S3 server on 127.0.0.1. It can refuse
connections (the store going away) or hold a response after N bytes (a download stalled
mid-shard, so a process can be killed at a known point without timing).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

TIMEOUT = 60.0
SECRET = "modelswap-test-s3cr3t-Value-9f8e7d"


def wait_for(pred: Callable[[], object], timeout: float = TIMEOUT, what: str = "") -> None:
    """Return as soon as pred() is true; fail after `timeout` (generous, never asserted)."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or pred}")
        time.sleep(0.02)


def export(path: Path, offset: float, *, vocab: str | None = None, size: int = 1) -> Path:
    """Save `y = x + offset` (+ a `size`-float variable; an asset file if `vocab`)."""
    import tensorflow as tf

    class Model(tf.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.offset = tf.Variable(offset, dtype=tf.float32)
            self.padding = tf.Variable(tf.zeros([size]), dtype=tf.float32)
            if vocab is not None:
                vocab_file = path.parent / f"{path.name}-vocab.txt"
                vocab_file.write_text(vocab)
                self.vocab = tf.saved_model.Asset(str(vocab_file))

        @tf.function(  # type: ignore[untyped-decorator]
            input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
        def __call__(self, x: Any) -> dict[str, Any]:
            return {"y": x + self.offset + tf.reduce_sum(self.padding)}

    module = Model()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.__call__})
    return path


def predict(path: Path, x: float = 1.0) -> float:
    """Load the SavedModel at `path` with TensorFlow and call it."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    return float(loaded.signatures["serving_default"](x=tf.constant([[x]]))["y"][0][0])


class Proxy:
    """A loopback TCP proxy to `port`: `refuse()` / `allow()`, `stall_after(n)` / `release()`."""

    def __init__(self, port: int) -> None:
        self._target = ("127.0.0.1", port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._refusing = False
        self._stall: int | None = None
        self._released = threading.Event()
        self._released.set()
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def refuse(self) -> None:
        """Close every open connection; accept new ones only to close them."""
        self._refusing = True
        with self._lock:
            for s in self._socks:
                _close(s)
            self._socks.clear()

    def allow(self) -> None:
        self._refusing = False

    def stall_after(self, n: int) -> None:
        """Hold each response of a connection once it has sent `n` bytes to the client."""
        self._stall = n
        self._released.clear()

    def release(self) -> None:
        self._stall = None
        self._released.set()

    def close(self) -> None:
        self._stop.set()
        self.release()
        self.refuse()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            if self._refusing:
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self._target)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._socks += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, False),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True),
                             daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, to_client: bool) -> None:
        sent = 0
        try:
            while data := src.recv(65536):
                if to_client and self._stall is not None and sent + len(data) > self._stall:
                    self._released.wait()
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        finally:
            _close(src)
            _close(dst)


def _close(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    s.close()


class Models:
    """Tiny SavedModels exported once per session: `get("a")` answers x + 1, "b" x + 2…"""

    SPECS: ClassVar[dict[str, dict[str, Any]]] = {
        "a": {"offset": 1.0},
        "b": {"offset": 2.0},
        "c": {"offset": 3.0},
        "vocab": {"offset": 4.0, "vocab": "alpha\nbeta\n"},
        "big": {"offset": 5.0, "size": 2_000_000},  # an 8 MB shard
    }

    def __init__(self, root: Path) -> None:
        self.root = root

    def get(self, name: str) -> Path:
        path = self.root / name
        if not path.exists():
            export(path, **self.SPECS[name])
        return path

    @staticmethod
    def answer(name: str, x: float = 1.0) -> float:
        return x + float(Models.SPECS[name]["offset"])
