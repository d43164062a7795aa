"""Fixtures of the interop tier (root; strongSwan's charon as the peer in a namespace).

The tier's prerequisites (root, ``ip netns``, charon with kernel-libipsec, the vici package) are
checked by the root conftest for every test marked ``interop``; mark each module with
``pytestmark = pytest.mark.interop``. ``charon_factory`` and ``topology`` come from the root
conftest.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.netns import Namespace, Topology, TwoHosts, two_hosts


@dataclass(frozen=True, slots=True)
class Site:
    """A host with its outer (IKE) address and an inner address on ``lo`` (a /32).

    libipsec routes tunnel traffic via ``ipsec0`` with ``src`` = the local inner address, so
    that address must exist on an interface (shared/STRONGSWAN.md point 3); inner subnets are
    kept apart from the outer link so that no traffic selector covers the peer's IKE address.
    """

    ns: Namespace
    outer: str
    inner: str
    inner_net: str


@dataclass(frozen=True, slots=True)
class SitePair:
    hosts: TwoHosts
    left: Site
    right: Site


RMEM_DEFAULT = Path("/proc/sys/net/core/rmem_default")
PEER_RCVBUF = 4 * 1024 * 1024


@pytest.fixture(scope="session", autouse=True)
def _peer_socket_buffers() -> Iterator[None]:
    """Larger default socket receive buffers for the tier, restored afterwards.

    charon receives ESP-in-UDP on a socket it leaves at the kernel's default buffer (208 KiB, ~180
    datagrams of 1200 bytes); while its threads compute a reauthentication's key exchange on this
    2-core machine, a 50 Mbit/s stream overflows that buffer (``UdpRcvbufErrors`` in charon's
    namespace) — lost packets that are charon's, not the tunnel's. ``rmem_default`` is not
    per-namespace, so it is raised for the whole session (pyipsec sizes its own sockets)."""
    try:
        old = int(RMEM_DEFAULT.read_text())
        if old < PEER_RCVBUF:
            RMEM_DEFAULT.write_text(str(PEER_RCVBUF))
    except OSError:  # not root: the tier skips anyway
        yield
        return
    try:
        yield
    finally:
        RMEM_DEFAULT.write_text(str(old))


@pytest.fixture
def site_pair(topology: Topology) -> SitePair:
    """left 10.231.1.1 (inner 10.232.1.1) and right 10.231.1.2 (inner 10.232.2.1)."""
    hosts = two_hosts(topology)
    sites = []
    for ns, outer, n in ((hosts.left, hosts.link.a_addr, 1), (hosts.right, hosts.link.b_addr, 2)):
        inner = f"10.232.{n}.1"
        ns.add_address("lo", f"{inner}/32")
        sites.append(Site(ns=ns, outer=outer, inner=inner, inner_net=f"{inner}/32"))
    return SitePair(hosts, sites[0], sites[1])
