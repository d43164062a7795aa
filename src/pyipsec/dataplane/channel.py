"""The control plane ↔ data plane channel: messages over a ``SOCK_SEQPACKET`` socketpair.

Theory of operation
-------------------
The IKE daemon starts the data plane with :meth:`DataplaneHandle.spawn`: a new process
(``python -m pyipsec.dataplane``) that inherits one end of an ``AF_UNIX``/``SOCK_SEQPACKET``
socketpair. Sequenced packets keep message boundaries, so each message is exactly one
``send``/``recv`` with no framing of its own. The first byte says what follows:

* ``b"I"``: an IKE datagram on the NAT-T port (either way): ``local ‖ remote ‖ payload`` with
  each endpoint as ``version(1) ‖ address(16, IPv4 left-aligned) ‖ port(2)``; the payload is the
  IKE message without the non-ESP marker (RFC 3948 §2.2), which the data plane adds and strips;
* ``b"J"``: one JSON object (the messages and their encoding live in
  :mod:`pyipsec.dataplane.messages` and are re-exported here), ``{"op": ...}`` towards the
  data plane (install, remove, activate, counters, shutdown) and ``{"ev": ...}`` back (ready,
  error, counters, signal, acquire). An ``install`` message carries the engine's
  :class:`~pyipsec.childsa.ChildSaSpec` as is; its keys travel hex-encoded there and nowhere
  else, nothing in this module or the data plane logs a message body, and the spec keeps its
  keys out of ``repr``.

The data plane exits (removing its TUN device, routes and rules) when the channel closes, so it
never outlives the daemon, even one that was killed. :class:`DataplaneHandle` is what the daemon
holds; its socket is watched with ``loop.add_reader(handle.fileno(), ...)`` and
:meth:`DataplaneHandle.read_events` never blocks.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv6Address

from pyipsec.childsa import ChildSaSpec
from pyipsec.dataplane import messages
from pyipsec.dataplane.messages import *  # noqa: F403  (re-exported: callers import them from here)
from pyipsec.dataplane.messages import (
    ActivateOutbound,
    Counters,
    DataplaneClosed,
    DataplaneError,
    DataplaneEvent,
    Failed,
    InstallChild,
    Ready,
    RemoveChild,
    RequestCounters,
    SaCounters,
    SendKeepalive,
    Shutdown,
    UpdateEndpoints,
    decode_event,
    encode_control,
    encode_ike,
)
from pyipsec.net.addr import IKE_NATT_PORT, Endpoint, IPAddress

__all__ = ["DataplaneHandle"]
__all__ += messages.__all__

_log = logging.getLogger(__name__)

MAX_MESSAGE = 256 * 1024
_SOCKBUF = 4 * 1024 * 1024

# --- the control-plane side -------------------------------------------------------------------


_WILDCARDS: tuple[IPAddress, ...] = (IPv4Address(0), IPv6Address(0))


class DataplaneHandle:
    """The daemon's handle on its data-plane process (module docstring)."""

    def __init__(self, proc: subprocess.Popen[bytes], sock: socket.socket, ready: Ready) -> None:
        self.proc = proc
        self.sock = sock
        self.ready = ready
        self._closed = False
        self._eof = False
        self._pending: list[SaCounters] = []

    @property
    def tun_name(self) -> str:
        return self.ready.tun

    @property
    def mtu(self) -> int:
        return self.ready.mtu

    @property
    def pid(self) -> int:
        return self.proc.pid

    @classmethod
    def spawn(
        cls,
        *,
        tun_name: str = "pyi0",
        nat_t_port: int = IKE_NATT_PORT,
        mtu: int | None = None,
        listen: Sequence[IPAddress] = _WILDCARDS,
        log_level: str = "info",
        log_format: str = "text",
        table: int = 220,
        offload: bool | None = None,
        tso: bool | None = None,
        netns: str | None = None,
        timeout: float = 15.0,
    ) -> DataplaneHandle:
        """Start the data-plane process and wait until it is ready (see the module docstring).

        ``offload`` None means the virtio-net header (coalesced TUN writes) and UDP GSO/GRO
        when the kernel has them; ``tso`` asks for TUN TSO with segmentation in Python as
        well (off by default: slower than the kernel's own segmentation here); ``netns`` runs
        the process inside that named network namespace (tests, benchmarks). Raises
        :class:`DataplaneError` with the process's reason when it cannot start.
        """
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        for s in (parent, child):
            with contextlib.suppress(OSError):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKBUF)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SOCKBUF)
        argv = [
            sys.executable,
            "-m",
            "pyipsec.dataplane",
            "--channel-fd",
            str(child.fileno()),
            "--tun",
            tun_name,
            "--port",
            str(nat_t_port),
            "--table",
            str(table),
            "--log-level",
            log_level,
            "--log-format",
            log_format,
        ]
        if mtu is not None:
            argv += ["--mtu", str(mtu)]
        for addr in listen:
            argv += ["--listen", str(addr)]
        if offload is not None:
            argv += ["--offload", "on" if offload else "off"]
        if tso is not None:
            argv += ["--tso", "on" if tso else "off"]
        if netns is not None:
            argv = ["ip", "netns", "exec", netns, *argv]
        try:
            proc = subprocess.Popen(argv, pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL)  # noqa: S603
        except OSError as exc:
            parent.close()
            child.close()
            raise DataplaneError(f"cannot start the data plane: {exc}") from None
        child.close()
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DataplaneError(f"the data plane did not get ready within {timeout} s")
                readable, _, _ = select.select([parent], [], [], min(left, 0.5))
                if not readable:
                    if proc.poll() is not None:
                        raise DataplaneError(f"the data plane exited with {proc.returncode} while starting")
                    continue
                data = parent.recv(MAX_MESSAGE)
                if not data:
                    code = proc.wait(timeout=5)
                    raise DataplaneError(f"the data plane exited with {code} while starting")
                ev, _ = decode_event(data)
                if isinstance(ev, Failed):
                    raise DataplaneError(ev.message)
                if isinstance(ev, Ready):
                    parent.setblocking(True)
                    return cls(proc, parent, ev)
        except BaseException:
            parent.close()
            _stop(proc)
            raise

    def fileno(self) -> int:
        return self.sock.fileno()

    def _send(self, data: bytes) -> None:
        if self._closed or self._eof:
            raise DataplaneError("the data plane is not running")
        try:
            self.sock.send(data)
        except OSError as exc:
            raise DataplaneError(f"data-plane channel: {exc}") from None

    def install_child(self, child: ChildSaSpec) -> None:
        self._send(encode_control(InstallChild(child)))

    def remove_child(self, spi_in: bytes) -> None:
        self._send(encode_control(RemoveChild(spi_in)))

    def activate_outbound(self, spi_in: bytes) -> None:
        """Switch outbound traffic to a child installed with ``outbound_active=False``."""
        self._send(encode_control(ActivateOutbound(spi_in)))

    def deactivate_outbound(self, spi_in: bytes) -> None:
        """Stop sending on a child that keeps receiving (see :class:`ActivateOutbound`)."""
        self._send(encode_control(ActivateOutbound(spi_in, active=False)))

    def send_keepalive(self, local: Endpoint, remote: Endpoint) -> None:
        """A NAT keepalive (0xFF) from the NAT-T port (RFC 3948 §2.3)."""
        self._send(encode_control(SendKeepalive(local, remote)))

    def update_endpoints(self, spi_in: bytes, local: Endpoint, remote: Endpoint, encap: bool) -> None:
        """Move a child's ESP to new endpoints (MOBIKE, NAT rebinding); keys and counters stay."""
        self._send(encode_control(UpdateEndpoints(spi_in, local, remote, encap)))

    def send_ike(self, local: Endpoint, remote: Endpoint, payload: bytes) -> None:
        """Send an IKE message from the NAT-T port (the data plane adds the non-ESP marker)."""
        self._send(encode_ike(local, remote, payload))

    def request_counters(self, *, sas: bool = True) -> None:
        """Ask for the counters (``sas``: every SA's too; without, the answer is only a barrier)."""
        self._send(encode_control(RequestCounters(sas)))

    def read_events(self) -> list[DataplaneEvent]:
        """Everything the data plane sent since the last call; never blocks."""
        out: list[DataplaneEvent] = []
        if self._closed or self._eof:
            return out
        while True:
            try:
                data = self.sock.recv(MAX_MESSAGE, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                data = b""
            if not data:
                self._eof = True
                out.append(DataplaneClosed(self.proc.poll()))
                break
            try:
                ev, last = decode_event(data)
            except DataplaneError as exc:
                _log.warning("data plane: %s", exc)
                continue
            if isinstance(ev, Counters):
                self._pending.extend(ev.sas)
                if last:
                    out.append(Counters(tuple(self._pending), ev.totals))
                    self._pending = []
            elif isinstance(ev, (Ready, Failed)):
                _log.warning("data plane: unexpected %s", type(ev).__name__)
            else:
                out.append(ev)
        return out

    def close(self, timeout: float = 5.0) -> None:
        """Stop the process (it removes its TUN device, routes and rules); idempotent."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self.sock.send(encode_control(Shutdown()))
        self.sock.close()
        _stop(self.proc, timeout)

    def __enter__(self) -> DataplaneHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _stop(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    try:
        proc.wait(timeout=timeout)
        return
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
