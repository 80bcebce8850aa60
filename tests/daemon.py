"""Drive the real daemon process: JSON logs from stdout, sd_notify datagrams on a socket."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

TIMEOUT = 60.0


class DaemonProcess:
    """`python -m modelswap run --config F` with NOTIFY_SOCKET bound by the test."""

    def __init__(self, config: Path, tmp: Path, env: dict[str, str] | None = None,
                 notify: bool = True, launcher: list[str] | None = None) -> None:
        self.logs: list[dict[str, Any]] = []
        self.notes: list[dict[str, str]] = []
        self._cond = threading.Condition()
        environ = {k: v for k, v in os.environ.items()
                   if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
        self._sock: socket.socket | None = None
        if notify:
            path = tmp / "notify.sock"
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.bind(str(path))
            self._sock.settimeout(0.5)
            environ["NOTIFY_SOCKET"] = str(path)
            threading.Thread(target=self._read_notify, daemon=True).start()
        environ.update(env or {})
        self.proc = subprocess.Popen(
            [*(launcher or [sys.executable]), "-m", "modelswap", "run", "--config",
             str(config)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ)
        self.stderr = ""
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = {"event": "<not json>", "line": line}
            with self._cond:
                self.logs.append(record)
                self._cond.notify_all()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()

    def _read_notify(self) -> None:
        assert self._sock is not None
        while True:
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                if self.proc.poll() is not None:
                    return
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            with self._cond:
                self.notes.append(fields)
                self._cond.notify_all()

    def _wait(self, items: Callable[[], list[Any]], pred: Callable[[Any], bool],
              timeout: float, what: str) -> Any:
        with self._cond:
            found: list[Any] = []

            def check() -> bool:
                found[:] = [item for item in items() if pred(item)]
                return bool(found) or self.proc.poll() is not None

            self._cond.wait_for(check, timeout)
            if not found:
                raise AssertionError(f"no {what} within {timeout}s (exit {self.proc.poll()});"
                                     f" logs: {self.logs[-15:]}; notes: {self.notes[-10:]};"
                                     f" stderr: {self.stderr[-2000:]}")
            return found[0]

    def wait_log(self, pred: Callable[[dict[str, Any]], bool], timeout: float = TIMEOUT,
                 what: str = "log line") -> dict[str, Any]:
        return self._wait(lambda: self.logs, pred, timeout, what)  # type: ignore[no-any-return]

    def wait_state(self, model: str, version: int, state: str,
                   timeout: float = TIMEOUT) -> dict[str, Any]:
        return self.wait_log(lambda r: r.get("event") == "version_state"
                             and r.get("model") == model and r.get("version") == version
                             and r.get("state") == state, timeout,
                             f"{model} v{version} {state}")

    def wait_note(self, pred: Callable[[dict[str, str]], bool], timeout: float = TIMEOUT,
                  what: str = "notification") -> dict[str, str]:
        return self._wait(lambda: self.notes, pred, timeout, what)  # type: ignore[no-any-return]

    def count(self, pred: Callable[[dict[str, Any]], bool]) -> int:
        with self._cond:
            return sum(1 for r in self.logs if pred(r))

    def send(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = TIMEOUT) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            return self.proc.wait(timeout)
        finally:
            self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self._sock is not None:
            self._sock.close()
