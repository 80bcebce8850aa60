"""The daemon: signals, sd_notify, config reload on SIGHUP, graceful stop."""

from __future__ import annotations

import os
import signal
import threading
import time
from types import FrameType

from modelswap.api import ModelSwap
from modelswap.config import Config, config_warnings, load_config
from modelswap.errors import ConfigError
from modelswap.fleet.status import FleetReporter
from modelswap.logger import get_logger
from modelswap.service import logs
from modelswap.service.notify import Notifier, watchdog_interval

log = get_logger("modelswap.service")
TICK = 0.2  # seconds between looks at readiness, status and the watchdog


START_FAILED = 3  # exit code: `service.require` not met within `service.start_timeout`


class Daemon:
    """Runs one ModelSwap until SIGTERM/SIGINT; SIGHUP re-reads the config file.

    READY=1 goes out once `service.require` models are available; if that takes longer
    than `service.start_timeout`, the daemon exits with START_FAILED."""

    def __init__(self, config: Config, notifier: Notifier | None = None) -> None:
        self.config = config
        self.notifier = notifier or Notifier()
        self.swap = ModelSwap(config)
        self._wake = threading.Event()
        self._stop_signal: int | None = None
        self._reloads = 0
        self._status = ""
        self._reload_error: str | None = None

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self._reloads += 1
        elif self._stop_signal is not None and signum == signal.SIGINT:
            os.write(2, b"modelswap: second SIGINT, exiting at once\n")
            os._exit(130)
        else:
            self._stop_signal = signum
        self._wake.set()

    def run(self) -> int:
        """Serve until asked to stop; returns the exit code."""
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        log.info("starting", config=self.config.source, pid=os.getpid(),
                 models=[m.name for m in self.config.models])
        for warning in config_warnings(self.config):
            log.warning("config_warning", file=warning.file, line=warning.line,
                        key=warning.key, message=warning.message)
        self.swap.start()
        reporter = FleetReporter(self.swap).start() if self.config.service.fleet_status else None
        ready = False
        started = time.monotonic()
        ping_every = watchdog_interval()
        next_ping = time.monotonic()
        while self._stop_signal is None:
            self._wake.wait(TICK)
            self._wake.clear()
            if self._reloads:
                self._reloads = 0
                self._reload()
            if not ready and self.swap.ready():
                ready = True
                self.notifier.send(READY=1, STATUS=self._summary())
                log.info("ready", status=self._status)
            elif not ready and self._start_timed_out(started):
                return self._fail_start()
            else:
                self._send_status()
            if ping_every is not None and time.monotonic() >= next_ping:
                next_ping = time.monotonic() + ping_every
                if self.swap.healthy():
                    self.notifier.send(WATCHDOG=1)
                else:
                    log.error("watchdog_withheld", reason="coordinator or observer not "
                              "making progress; systemd will restart the service")
        name = signal.Signals(self._stop_signal).name
        log.info("stopping", signal=name)
        self.notifier.send(STOPPING=1, STATUS=f"stopping on {name}")
        if reporter is not None:
            reporter.stop()
        late = self.swap.stop()
        if late:
            log.warning("consumers_abandoned", consumers=late,
                        stop_timeout_s=self.config.service.stop_timeout)
        log.info("stopped")
        return 0

    def _start_timed_out(self, started: float) -> bool:
        limit = self.config.service.start_timeout
        return limit > 0 and time.monotonic() - started >= limit

    def _fail_start(self) -> int:
        """`require` not met in time: say why in one line, stop, exit START_FAILED."""
        service = self.config.service
        line = (f"not ready after {service.start_timeout:g}s (require: {service.require}): "
                f"{self.swap.summary(errors=True)}")
        log.error("start_failed", reason=line, require=service.require,
                  start_timeout_s=service.start_timeout)
        self.notifier.send(STATUS=line[:1000])
        self.swap.stop()
        return START_FAILED

    def _summary(self) -> str:
        self._status = self.swap.summary()
        if self._reload_error:
            self._status += f"; reload failed, serving the previous config: {self._reload_error}"
        return self._status[:1000]

    def _send_status(self) -> None:
        previous = self._status
        if self._summary() != previous:
            self.notifier.send(STATUS=self._status[:1000])

    def _reload(self) -> None:
        path = self.config.source
        self.notifier.reloading()
        log.info("reloading", config=path)
        try:
            if path is None or path.startswith("<"):
                raise ConfigError("this config was not read from a file", file=path)
            config = load_config(path)
            self.swap.reload(config)
        except (ConfigError, TimeoutError) as exc:
            log.error("reload_failed", config=path, error=str(exc),
                      file=getattr(exc, "file", None), line=getattr(exc, "line", None),
                      key=getattr(exc, "key", None), keeping="previous config")
            self._reload_error = str(exc)
            self.notifier.send(READY=1, STATUS=self._summary())
            return
        self._reload_error = None
        self.config = config
        logs.configure_logging(config.logging)
        log.info("reloaded", config=path, models=[m.name for m in config.models])
        self.notifier.send(READY=1, STATUS=self._summary())


def run(config: Config) -> int:
    """Run the daemon in the foreground; returns the exit code."""
    return Daemon(config).run()
