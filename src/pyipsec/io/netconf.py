"""Interface, route and policy-rule configuration over netlink (``pyroute2``).

Theory of operation
-------------------
:class:`LinuxNetConfig` configures the data plane's TUN device the way strongSwan's
kernel-libipsec does: the link is brought up with an MTU that leaves room for the ESP/UDP
overhead (:func:`tunnel_mtu`), and each installed Child SA gets routes for its *remote* traffic
selectors through the TUN device in a dedicated routing table (220 by default), with ``src`` set
to the local selector's address when that is a single address present on the host. One policy
rule per address family (``from all lookup 220``, priority 220) sends traffic to that table; as
the table only holds the remote selectors, the route to the peer itself stays outside the tunnel.
When a remote selector covers the peer's own address (e.g. ``0.0.0.0/0``), a host route to the
peer through its usual gateway is added to the table as well, as strongSwan does.

Routes are reference-counted by destination, so two children with the same selectors (a rekey
in progress) share them; they are removed when the last child using them goes. :meth:`close`
removes the rules and every route left (the routes through the TUN device also vanish with it).
Stale rules of an earlier instance that was killed are replaced at :meth:`setup`.

:class:`NetConfigurator` is the seam; tests that run without root use a recording fake.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from pyroute2 import IPRoute  # type: ignore[import-untyped,unused-ignore]
from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped,unused-ignore]

from pyipsec.net.addr import IPAddress

__all__ = [
    "DEFAULT_RULE_PRIORITY",
    "DEFAULT_TABLE",
    "ESP_UDP_OVERHEAD_MAX",
    "LinuxNetConfig",
    "NetConfigurator",
    "RouteSpec",
    "routes_for",
    "tunnel_mtu",
]

_log = logging.getLogger(__name__)

DEFAULT_TABLE = 220
DEFAULT_RULE_PRIORITY = 220
ESP_UDP_OVERHEAD_MAX = 100
"""Worst-case bytes ESP-in-UDP adds over IPv4 for the common suites: IPv4 20 + UDP 8 + ESP 8 +
IV 16 + padding and trailer up to 17 + ICV up to 32 (AES-CBC/HMAC-SHA2-512) is 101; AEAD suites
need 64. 100 keeps the classic 1400 on a 1500-byte path, like libipsec."""

RangeTuple = tuple[IPAddress, IPAddress]


def tunnel_mtu(path_mtu: int) -> int:
    """The TUN MTU for a path MTU: path minus the ESP/UDP overhead, at least the IPv6 minimum."""
    return max(1280, min(path_mtu - ESP_UDP_OVERHEAD_MAX, 65535))


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """One route into the tunnel table: ``dst/prefix`` via the TUN device (or via a gateway)."""

    dst: str
    prefix: int
    src: str | None = None
    gateway: str | None = None
    oif: int | None = None  # None: the TUN device

    @property
    def family(self) -> int:
        return socket.AF_INET6 if ":" in self.dst else socket.AF_INET


def routes_for(remote: Iterable[RangeTuple], src: IPAddress | None) -> list[RouteSpec]:
    """Routes covering the remote address ranges (each range summarised into CIDR prefixes)."""
    out: list[RouteSpec] = []
    for first, last in remote:
        for net in ipaddress.summarize_address_range(first, last):  # type: ignore[type-var,unused-ignore]
            s = str(src) if src is not None and src.version == net.version else None
            out.append(RouteSpec(str(net.network_address), net.prefixlen, s))
    return out


class NetConfigurator(Protocol):
    """Link, route and rule set-up for the TUN device."""

    def setup(self, mtu: int | None) -> int: ...

    def add_child(
        self, key: int, remote: Sequence[RangeTuple], local: Sequence[RangeTuple], peer: IPAddress
    ) -> None: ...

    def remove_child(self, key: int) -> None: ...

    def close(self) -> None: ...


class LinuxNetConfig:
    """:class:`NetConfigurator` over netlink for the TUN device ``ifname``."""

    def __init__(
        self, ifname: str, *, table: int = DEFAULT_TABLE, rule_priority: int = DEFAULT_RULE_PRIORITY
    ) -> None:
        self.ifname = ifname
        self.table = table
        self.rule_priority = rule_priority
        self._ipr = IPRoute()
        self.ifindex = 0
        self.mtu = 0
        self._refs: dict[RouteSpec, int] = {}
        self._by_child: dict[int, list[RouteSpec]] = {}
        self._rules: list[int] = []

    # --- link and rules -----------------------------------------------------------------------

    def path_mtu(self) -> int:
        """The largest MTU of the host's other up, non-loopback links (1500 if there is none)."""
        best = 0
        for link in self._ipr.get_links():
            name = link.get("IFLA_IFNAME")
            mtu = link.get("IFLA_MTU") or 0
            if name in ("lo", self.ifname) or not (link["flags"] & 1):  # IFF_UP
                continue
            best = max(best, int(mtu))
        return best or 1500

    def setup(self, mtu: int | None) -> int:
        """Bring the device up with ``mtu`` (default: from the path MTU); add the rules."""
        found = self._ipr.link_lookup(ifname=self.ifname)
        if not found:
            raise OSError(f"no interface {self.ifname}")
        self.ifindex = int(found[0])
        self.mtu = mtu if mtu is not None else tunnel_mtu(self.path_mtu())
        self._ipr.link("set", index=self.ifindex, mtu=self.mtu, txqlen=1000)
        self._ipr.link("set", index=self.ifindex, state="up")
        for family in (socket.AF_INET, socket.AF_INET6):
            # a killed predecessor's rule would otherwise stay (rules outlive the device)
            with contextlib.suppress(NetlinkError):  # ENOENT: none (left)
                while True:
                    self._ipr.rule("del", table=self.table, priority=self.rule_priority, family=family)
            try:
                self._ipr.rule("add", table=self.table, priority=self.rule_priority, family=family)
                self._rules.append(family)
            except NetlinkError as exc:
                if family == socket.AF_INET:
                    raise
                _log.info("no IPv6 policy rule (%s)", exc)
        return self.mtu

    # --- routes -------------------------------------------------------------------------------

    def _local_addresses(self) -> set[str]:
        out: set[str] = set()
        for msg in self._ipr.get_addr():
            a = msg.get("IFA_LOCAL") or msg.get("IFA_ADDRESS")
            if a:
                out.add(str(ipaddress.ip_address(a)))
        return out

    def add_child(
        self, key: int, remote: Sequence[RangeTuple], local: Sequence[RangeTuple], peer: IPAddress
    ) -> None:
        """Routes for one child's remote selectors (see the module docstring)."""
        if key in self._by_child:
            return
        src: IPAddress | None = None
        singles = [a for a, b in local if a == b]
        if singles:
            present = self._local_addresses()
            src = next((a for a in singles if str(a) in present), None)
        specs = routes_for(remote, src)
        for first, last in remote:
            if first.version == peer.version and first <= peer <= last:  # type: ignore[operator]
                bypass = self._peer_route(peer)
                if bypass is not None:
                    specs.insert(0, bypass)
                break
        done: list[RouteSpec] = []
        for spec in specs:
            if self._refs.get(spec, 0) == 0:
                try:
                    self._add_route(spec)
                except NetlinkError as exc:
                    _log.warning("route %s/%d into table %d: %s", spec.dst, spec.prefix, self.table, exc)
                    continue
            self._refs[spec] = self._refs.get(spec, 0) + 1
            done.append(spec)
        self._by_child[key] = done

    def _peer_route(self, peer: IPAddress) -> RouteSpec | None:
        try:
            found = self._ipr.route("get", dst=str(peer))
        except NetlinkError as exc:
            # without it traffic to the peer itself may be routed into the tunnel: say so
            _log.warning("no route to the peer %s to keep outside the tunnel: %s", peer, exc)
            return None
        for msg in found:
            oif = msg.get("RTA_OIF")
            if oif is None or oif == self.ifindex:
                continue
            gw = msg.get("RTA_GATEWAY")
            return RouteSpec(str(peer), peer.max_prefixlen, None, gw, int(oif))
        return None

    def _add_route(self, spec: RouteSpec) -> None:
        args: dict[str, object] = {
            "dst": f"{spec.dst}/{spec.prefix}",
            "table": self.table,
            "oif": spec.oif if spec.oif is not None else self.ifindex,
            "family": spec.family,
        }
        if spec.src is not None:
            args["prefsrc"] = spec.src
        if spec.gateway is not None:
            args["gateway"] = spec.gateway
        try:
            self._ipr.route("add", **args)
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise

    def _del_route(self, spec: RouteSpec) -> None:
        try:
            self._ipr.route("del", dst=f"{spec.dst}/{spec.prefix}", table=self.table, family=spec.family)
        except NetlinkError as exc:
            if exc.code not in (errno.ESRCH, errno.ENOENT):  # else: gone already
                _log.warning("removing route %s/%d from table %d: %s", spec.dst, spec.prefix, self.table, exc)

    def remove_child(self, key: int) -> None:
        for spec in self._by_child.pop(key, []):
            n = self._refs.get(spec, 0) - 1
            if n <= 0:
                self._refs.pop(spec, None)
                self._del_route(spec)
            else:
                self._refs[spec] = n

    def close(self) -> None:
        """Remove every route and rule this instance added (idempotent)."""
        for key in list(self._by_child):
            self.remove_child(key)
        for family in self._rules:
            with contextlib.suppress(NetlinkError):  # gone already
                self._ipr.rule("del", table=self.table, priority=self.rule_priority, family=family)
        self._rules.clear()
        with contextlib.suppress(OSError):
            self._ipr.close()
