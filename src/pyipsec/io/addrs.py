"""Local address listing for MOBIKE (RFC 4555 §3.6): which addresses could carry IKE.

The daemon announces its other usable addresses to MOBIKE peers (ADDITIONAL_IP*_ADDRESS)
and re-announces them when they change. "Usable" here means: global-scope unicast
addresses (netlink scope 0, so no loopback, no IPv6 link-local) on interfaces that are up,
not tentative or deprecated, and not on an excluded interface (our TUN device, which carries
the virtual IPs). The addresses come from one netlink dump (pyroute2), run off the asyncio
loop as ``io.hostnet`` does.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from ipaddress import ip_address

from pyroute2 import IPRoute

from pyipsec.net.addr import IPAddress

__all__ = ["list_local_addresses"]

_log = logging.getLogger(__name__)
# pyroute2 logs every netlink message at DEBUG; the daemon lists addresses every few seconds
if logging.getLogger("pyroute2").level == logging.NOTSET:
    logging.getLogger("pyroute2").setLevel(logging.INFO)

_IFA_F_TENTATIVE = 0x40
_IFA_F_DEPRECATED = 0x20
_IFA_F_DADFAILED = 0x08
_IFF_UP = 0x1
_SCOPE_UNIVERSE = 0


def list_local_addresses(exclude_ifaces: Collection[str] = ()) -> tuple[IPAddress, ...]:
    """Our usable addresses (IPv4 first, each family in kernel order); raises OSError on failure.

    The dump runs on one long-lived worker thread with one netlink socket: pyroute2's
    synchronous ``IPRoute`` drives an asyncio loop of its own, which cannot run on the
    daemon's running loop, and creating one every few seconds would be wasteful.
    """
    global _worker  # noqa: PLW0603 - one worker per process, created on first use
    if _worker is None:
        _worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="addrs")
    return _worker.submit(_dump, frozenset(exclude_ifaces)).result()


_worker: ThreadPoolExecutor | None = None
_ipr: IPRoute | None = None  # used on the worker thread only


def _dump(exclude: frozenset[str]) -> tuple[IPAddress, ...]:
    global _ipr  # noqa: PLW0603
    if _ipr is None:
        _ipr = IPRoute()
    try:
        return _scan(_ipr, exclude)
    except Exception:
        _ipr.close()
        _ipr = None
        raise


def _scan(ipr: IPRoute, exclude: frozenset[str]) -> tuple[IPAddress, ...]:
    up: dict[int, str] = {}
    for link in ipr.get_links():
        name = link.get_attr("IFLA_IFNAME")
        if link["flags"] & _IFF_UP and name not in exclude and name != "lo":
            up[link["index"]] = name
    found: list[IPAddress] = []
    for msg in ipr.get_addr():
        if msg["index"] not in up or msg["scope"] != _SCOPE_UNIVERSE:
            continue
        flags = msg.get_attr("IFA_FLAGS") or msg["flags"]
        if flags & (_IFA_F_TENTATIVE | _IFA_F_DEPRECATED | _IFA_F_DADFAILED):
            continue
        text = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
        if not text:
            continue
        addr = ip_address(text)
        if addr.is_multicast or addr.is_unspecified or addr.is_loopback or addr.is_link_local:
            continue
        found.append(addr)
    return tuple(sorted(dict.fromkeys(found), key=lambda a: a.version))
