"""sd_notify(3) over $NOTIFY_SOCKET, in a few lines of stdlib (a no-op outside systemd)."""

from __future__ import annotations

import os
import socket
import time

from modelswap.logger import get_logger

log = get_logger("modelswap.notify")


class Notifier:
    """Sends `KEY=value` datagrams to the service manager."""

    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET")
        self._address: str | None = None
        self._sock: socket.socket | None = None
        if address and address[0] in "@/":
            # "@name" is Linux's abstract namespace: a leading NUL byte
            self._address = "\0" + address[1:] if address[0] == "@" else address
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, **fields: str | int) -> bool:
        """Send one notification, e.g. `send(READY=1, STATUS="3/3 models available")`."""
        if self._sock is None or self._address is None:
            return False
        payload = "\n".join(f"{key}={value}" for key, value in fields.items())
        try:
            self._sock.sendto(payload.encode("utf-8", "replace"), self._address)
        except OSError as exc:
            log.warning("sd_notify_failed", error=str(exc), message=payload[:200])
            return False
        return True

    def reloading(self) -> bool:
        """RELOADING=1 with the MONOTONIC_USEC that Type=notify-reload expects."""
        return self.send(RELOADING=1, MONOTONIC_USEC=time.clock_gettime_ns(
            time.CLOCK_MONOTONIC) // 1000)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval() -> float | None:
    """Half of $WATCHDOG_USEC in seconds, when the watchdog is meant for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    return int(usec) / 2e6
