"""Local address listing (netlink) for MOBIKE address lists."""

from __future__ import annotations

import socket
from ipaddress import IPv4Address, IPv6Address

from pyipsec.io.addrs import list_local_addresses


def test_lists_only_usable_unicast_addresses() -> None:
    addrs = list_local_addresses()
    assert all(isinstance(a, IPv4Address | IPv6Address) for a in addrs)
    assert not any(a.is_loopback or a.is_link_local or a.is_multicast for a in addrs)
    assert len(set(addrs)) == len(addrs)
    versions = [a.version for a in addrs]
    assert versions == sorted(versions)  # IPv4 first


def test_excluded_interfaces_contribute_nothing() -> None:
    every = [name for _, name in socket.if_nameindex()]
    assert list_local_addresses(exclude_ifaces=every) == ()
