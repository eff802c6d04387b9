"""sd_notify(3) without libsystemd: tell the service manager how the daemon is doing.

With ``Type=notify`` (contrib/systemd/engine.service) systemd waits for ``READY=1`` before it
considers engine started, shows ``RELOADING=1``/``READY=1`` around a SIGHUP reload and
``STOPPING=1`` at shutdown; with ``WatchdogSec=`` it expects ``WATCHDOG=1`` at least every
``WATCHDOG_USEC`` microseconds. The messages are datagrams on the unix socket ``$NOTIFY_SOCKET``
names (a path, or ``@name`` in the abstract namespace). Without ``NOTIFY_SOCKET`` every call is a
no-op, as sd_notify is.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def _address(value: str) -> str | bytes | None:
    if value.startswith("@"):  # the abstract namespace: a leading NUL byte instead of "@"
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None  # vsock: and other forms systemd may pass are not supported


class Notifier:
    """Sends notifications to ``$NOTIFY_SOCKET`` (read once, at construction)."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.address = _address(env.get("NOTIFY_SOCKET", ""))
        self.watchdog_usec = _watchdog_usec(env)
        self._watchdog: asyncio.TimerHandle | None = None
        if environ is None:
            # meant for this process only (sd_notify's unset_environment): runc, started by the
            # daemon, would otherwise take NOTIFY_SOCKET as a container's and wait on it
            for key in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
                os.environ.pop(key, None)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *fields: str) -> bool:
        """Send ``fields`` as one ``KEY=value`` per line; False when there is nobody to tell."""
        if self.address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self.address)
                sock.sendall("\n".join(fields).encode())
        except OSError as exc:  # the manager went away: the daemon carries on, as with sd_notify
            log.debug("sd_notify %s failed: %s", fields, exc)
            return False
        return True

    def ready(self) -> bool:
        return self.notify("READY=1", "STATUS=Serving the Engine API", f"MAINPID={os.getpid()}")

    def reloading(self) -> bool:
        # MONOTONIC_USEC: what systemd 253's Type=notify-reload expects with RELOADING=1
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=Reloading configuration")

    def around_reload(self, reload: Callable[[], object]) -> None:
        """RELOADING=1, ``reload()``, then READY=1 again (also when the reload failed: the daemon
        keeps serving with its previous configuration)."""
        self.reloading()
        try:
            reload()
        finally:
            self.ready()

    def stopping(self) -> bool:
        self.stop_watchdog()
        return self.notify("STOPPING=1", "STATUS=Shutting down")

    def start_watchdog(self, loop: asyncio.AbstractEventLoop) -> None:
        """Keep-alive pings at half the watchdog interval (as sd_watchdog_enabled(3) advises), from
        the event loop: a loop that stops turning stops the pings and systemd restarts the daemon."""
        if self.address is None or not self.watchdog_usec:
            return
        interval = self.watchdog_usec / 2e6

        def ping() -> None:
            self.notify("WATCHDOG=1")
            self._watchdog = loop.call_later(interval, ping)

        ping()

    def stop_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None


def _watchdog_usec(env: dict[str, str] | os._Environ[str]) -> int:
    """``WATCHDOG_USEC`` when it is meant for this process (``WATCHDOG_PID`` absent or ours)."""
    pid = env.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return 0
    try:
        usec = int(env.get("WATCHDOG_USEC", "0"))
    except ValueError:
        return 0
    return max(usec, 0)
