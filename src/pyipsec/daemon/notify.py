"""systemd's service notification protocol (``sd_notify``), written out: readiness, status, watchdog.

Theory of operation
-------------------
A service started with ``Type=notify`` tells systemd how it is doing by sending datagrams of
newline-separated ``KEY=VALUE`` lines to the AF_UNIX/SOCK_DGRAM socket named in the
environment variable ``NOTIFY_SOCKET`` (sd_notify(3)): a file system path, or an abstract
socket when the name starts with ``@`` (the ``@`` stands for the leading NUL byte); other forms
(``vsock:``) are not supported and are ignored with a warning. No
libsystemd is needed; one unconnected datagram socket and ``sendto`` are the whole client.
Without ``NOTIFY_SOCKET`` (not run by systemd, or by a unit that is not ``Type=notify``)
every call here is a no-op.

What the daemon says, and when (``daemon.runtime``):

- ``READY=1`` with a ``STATUS=`` once the ports are open and the control socket listens — so
  ``systemctl start`` returns when ``pyipsec status`` can answer;
- ``STATUS=...`` ("3 IKE SAs, 5 Child SAs") every :data:`STATUS_INTERVAL` seconds when the text
  changed;
- ``RELOADING=1`` with ``MONOTONIC_USEC=`` (the CLOCK_MONOTONIC time in µs, which systemd ≥ 253
  requires with ``Type=notify-reload`` and older versions ignore) when a reload begins, and
  ``READY=1`` when it is done;
- ``STOPPING=1`` when shutdown begins;
- ``WATCHDOG=1`` every half of ``WATCHDOG_USEC`` (set by systemd from ``WatchdogSec=``) when
  ``WATCHDOG_PID`` is absent or is our process id (sd_watchdog_enabled(3)). The ping is a timer
  on the daemon's clock — in production the asyncio loop — so a loop that stalls (a callback
  that blocks, a busy loop) stops pinging and systemd restarts the service, which is the point
  of the watchdog: a thread pinging on its own would keep a dead daemon alive.

The variables are removed from ``os.environ`` when they are read (sd_notify's
``unset_environment``), so child processes — the data plane — neither inherit them nor notify
on our behalf (``NotifyAccess=main`` would refuse them anyway).

Sending never fails the daemon: the first error is logged as a warning naming the socket, later
ones at debug level; a notification that could not be sent is simply lost, as with sd_notify.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, MutableMapping

from pyipsec.daemon.clock import Clock, TimerHandle

__all__ = ["ENV_VARS", "STATUS_INTERVAL", "Notifier", "monotonic_usec"]

_log = logging.getLogger("pyipsec.daemon")

#: The variables systemd passes to a notify service; read once, then removed.
ENV_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
#: How often the ``STATUS=`` line is refreshed (sent only when it changed).
STATUS_INTERVAL = 10.0


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds, the clock systemd's ``MONOTONIC_USEC=`` refers to."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def _socket_address(name: str) -> str | bytes:
    """``NOTIFY_SOCKET`` as a ``sendto`` address: ``@name`` is the abstract socket ``\\0name``."""
    if name.startswith("@"):
        return b"\0" + name[1:].encode()
    return name


class Notifier:
    """Notifications to systemd from one daemon (module docstring); inert without a socket.

    ``socket_name`` is ``NOTIFY_SOCKET``'s value; ``watchdog`` the ping interval in seconds
    (half of ``WATCHDOG_USEC``), ``None`` for no watchdog. ``clock`` arms the timers.
    """

    def __init__(
        self,
        socket_name: str | None,
        clock: Clock,
        *,
        watchdog: float | None = None,
        monotonic: Callable[[], int] = monotonic_usec,
    ) -> None:
        self.socket_name = socket_name or None
        self.clock = clock
        self.watchdog = watchdog if self.socket_name is not None else None
        self._monotonic = monotonic
        self._sock: socket.socket | None = None
        self._failed = False
        self._status: Callable[[], str] | None = None
        self._last_status: str | None = None
        self._watchdog_timer: TimerHandle | None = None
        self._status_timer: TimerHandle | None = None

    @classmethod
    def from_environment(
        cls,
        clock: Clock,
        environ: MutableMapping[str, str] | None = None,
        *,
        pid: int | None = None,
    ) -> Notifier:
        """A notifier for what systemd put in ``environ`` (``os.environ``), which loses
        :data:`ENV_VARS`. A malformed ``WATCHDOG_USEC`` or another process's ``WATCHDOG_PID``
        means no watchdog (logged)."""
        env = os.environ if environ is None else environ
        values = {name: env.pop(name, None) for name in ENV_VARS}
        name, usec, wd_pid = values["NOTIFY_SOCKET"], values["WATCHDOG_USEC"], values["WATCHDOG_PID"]
        if name and not name.startswith(("/", "@")):
            _log.warning("systemd: ignoring NOTIFY_SOCKET=%r (neither a path nor an abstract @name)", name)
            name = None
        watchdog: float | None = None
        if name and usec is not None:
            me = os.getpid() if pid is None else pid
            if wd_pid is not None and wd_pid.strip() != str(me):
                _log.debug("systemd watchdog: WATCHDOG_PID=%s is not our pid %d, not pinging", wd_pid, me)
            elif not usec.strip().isdigit() or int(usec) == 0:
                _log.warning("systemd watchdog: ignoring WATCHDOG_USEC=%r (not a positive integer)", usec)
            else:
                watchdog = int(usec) / 2e6
        return cls(name, clock, watchdog=watchdog)

    @property
    def enabled(self) -> bool:
        return self.socket_name is not None

    # -- what the daemon says -------------------------------------------------------------------

    def ready(self, status: str | None = None) -> None:
        """``READY=1`` (at start, and when a reload is done), with a status line."""
        self._send("READY=1", *self._status_line(status))

    def reloading(self) -> None:
        """``RELOADING=1`` with ``MONOTONIC_USEC=``: a reload begins (:meth:`ready` ends it)."""
        self._send("RELOADING=1", f"MONOTONIC_USEC={self._monotonic()}")

    def stopping(self) -> None:
        """``STOPPING=1``: shutdown begins; the timers stop."""
        self.close()
        self._send("STOPPING=1", "STATUS=stopping")

    def status(self, text: str) -> None:
        """``STATUS=text``, if it differs from the last one sent."""
        if text != self._last_status:
            self._send(*self._status_line(text))

    def start(self, status: Callable[[], str] | None = None) -> None:
        """Arm the watchdog pings and the periodic status refresh (from ``status()``)."""
        if not self.enabled:
            return
        self._status = status
        if self.watchdog is not None and self._watchdog_timer is None:
            self._ping()
        if status is not None and self._status_timer is None:
            self._status_timer = self.clock.call_later(STATUS_INTERVAL, self._refresh)

    def close(self) -> None:
        """Stop the timers (the socket stays for a last notification)."""
        for timer in (self._watchdog_timer, self._status_timer):
            if timer is not None:
                timer.cancel()
        self._watchdog_timer = self._status_timer = None

    # -- timers -----------------------------------------------------------------------------------

    def _ping(self) -> None:
        assert self.watchdog is not None
        self._send("WATCHDOG=1")
        self._watchdog_timer = self.clock.call_later(self.watchdog, self._ping)

    def _refresh(self) -> None:
        self._status_timer = self.clock.call_later(STATUS_INTERVAL, self._refresh)
        if self._status is not None:
            self.status(self._status())

    # -- the wire ---------------------------------------------------------------------------------

    def _status_line(self, text: str | None) -> tuple[str, ...]:
        if text is None and self._status is not None:
            text = self._status()
        if text is None:
            return ()
        self._last_status = text
        return (f"STATUS={text.replace(chr(10), ' ')}",)

    def _send(self, *lines: str) -> None:
        if self.socket_name is None:
            return
        data = "".join(line + "\n" for line in lines).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sock.setblocking(False)
            self._sock.sendto(data, _socket_address(self.socket_name))
        except OSError as exc:
            level = logging.DEBUG if self._failed else logging.WARNING
            self._failed = True
            _log.log(level, "cannot notify systemd at NOTIFY_SOCKET=%s: %s", self.socket_name, exc)

    def shutdown(self) -> None:
        """Stop the timers and close the socket."""
        self.close()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
