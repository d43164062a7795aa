"""The data-plane process: set-up, the loop, and cleanup on every way out.

Theory of operation
-------------------
:func:`main` is what ``python -m pyipsec.dataplane`` runs, with the channel fd inherited from the
control plane (:meth:`~pyipsec.dataplane.channel.DataplaneHandle.spawn`). It creates the TUN
device (with the virtio-net header for coalesced GSO writes when the kernel allows it; TSO only
on request, see :func:`_open_tun`; ``TUNSETOFFLOAD`` is always set explicitly), configures it
over netlink (up, MTU, the policy rules), binds the NAT-T UDP sockets
(IPv4 and IPv6, ``UDP_GRO``) and the raw ESP sockets, reports ``ready`` — or ``error`` with the
reason, e.g. the port is in use or there is no ``/dev/net/tun`` — and runs
:class:`~pyipsec.dataplane.loop.DataplaneLoop` until the channel closes, a shutdown message
arrives or SIGTERM. Whatever ends it, the rules and routes are removed and the TUN device closed
(which deletes it). SIGINT is ignored: the control plane decides when the data plane stops.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Sequence
from ipaddress import ip_address
from types import FrameType

from pyipsec.dataplane.channel import DataplaneError, Failed, Ready, encode_event
from pyipsec.dataplane.loop import DataplaneLoop, UdpSockets
from pyipsec.io.netconf import LinuxNetConfig
from pyipsec.io.tun import TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, LinuxTun, TunError, open_tun
from pyipsec.logs import FORMATS, configure_logging
from pyipsec.net.addr import IPAddress

__all__ = ["main", "parse_args"]

_log = logging.getLogger("pyipsec.dataplane")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m pyipsec.dataplane", description=__doc__)
    ap.add_argument("--channel-fd", type=int, required=True)
    ap.add_argument("--tun", default="pyi0")
    ap.add_argument("--port", type=int, default=4500)
    ap.add_argument("--mtu", type=int, default=None)
    ap.add_argument("--table", type=int, default=220)
    ap.add_argument("--listen", action="append", default=[])
    ap.add_argument("--log-level", default="info")
    ap.add_argument("--log-format", choices=FORMATS, default="text")
    ap.add_argument("--offload", choices=("auto", "on", "off"), default="auto")
    ap.add_argument(
        "--tso",
        choices=("auto", "on", "off"),
        default=os.environ.get("PYIPSEC_DP_TSO", "auto"),
        help="TUN TSO (segmentation in Python) separately from the rest of the offloads",
    )
    return ap.parse_args(argv)


def _open_tun(name: str, offload: str, tso: str) -> LinuxTun:
    if offload == "off":
        return open_tun(name, vnet_hdr=False, offload=0)
    # TSO ("auto" = off): segmenting and checksumming in Python costs more on this class of
    # machine than letting the kernel segment in C and reading one packet per call (measured
    # with bench/bench_dataplane.py --variants); the vnet header is kept for coalesced writes.
    flags = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 if tso == "on" else 0
    try:
        return open_tun(name, vnet_hdr=True, offload=flags)
    except TunError:
        if offload == "on":
            raise
        _log.info("TUN offloads unavailable, continuing without")
        return open_tun(name, vnet_hdr=False, offload=0)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(
        logging.WARNING,
        args.log_format,
        text_format="%(asctime)s dataplane[%(process)d] %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("pyipsec").setLevel(getattr(logging, str(args.log_level).upper(), logging.INFO))
    channel = socket.socket(fileno=args.channel_fd)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def _terminate(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _terminate)
    listen: list[IPAddress] = [ip_address(a) for a in args.listen] or [
        ip_address("0.0.0.0"),
        ip_address("::"),
    ]
    tun: LinuxTun | None = None
    netconf: LinuxNetConfig | None = None
    sockets: UdpSockets | None = None
    try:
        try:
            tun = _open_tun(args.tun, args.offload, args.tso)
            netconf = LinuxNetConfig(tun.name, table=args.table)
            mtu = netconf.setup(args.mtu)
            sockets = UdpSockets(args.port, listen, gso=tun.vnet_hdr or args.offload == "on")
        except (OSError, DataplaneError, ValueError) as exc:
            _log.error("cannot start: %s", exc)
            with contextlib.suppress(OSError):
                channel.send(encode_event(Failed(f"data plane: {exc}")))
            return 1
        loop = DataplaneLoop(
            tun=tun,
            channel=channel,
            sockets=sockets,
            netconf=netconf,
            mtu=mtu,
            tso=bool(tun.offload),
        )
        channel.send(encode_event(Ready(tun.name, netconf.ifindex, mtu, tun.vnet_hdr, os.getpid())))
        _log.info(
            "ready: %s mtu %d, vnet_hdr %s, tso %s, udp gso/gro %s, port %d",
            tun.name,
            mtu,
            tun.vnet_hdr,
            bool(tun.offload),
            sockets.gso,
            args.port,
        )
        loop.run()
        return 0
    finally:
        if netconf is not None:
            netconf.close()
        if sockets is not None:
            sockets.close()
        if tun is not None:
            tun.close()
        channel.close()
        _log.info("stopped")
