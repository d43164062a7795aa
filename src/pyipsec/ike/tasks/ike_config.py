"""Configuration payloads in IKE_AUTH: virtual IPs, DNS, split-tunnel subnets (RFC 7296 §2.19).

Initiator: when the connection asks for virtual IPs (``vips``), the first IKE_AUTH request
carries a CFG_REQUEST for an address of each family asked for, with DNS servers and DNS
domains (RFC 8598); the CFG_REPLY of the final response tells what we got.

Responder: once the peer is authenticated (for EAP, in the last round), a CFG_REQUEST is
served from the connection's pools — an identity gets its previous address back — and
answered with the address, the pool's DNS servers and domains, and the connection's local
traffic selectors as INTERNAL_IP4/6_SUBNET (split tunnelling). An exhausted pool is
INTERNAL_ADDRESS_FAILURE; leases return to the pool when the IKE SA closes.

With pools behind I/O (``ike.pools.LookupPools``: the shared PostgreSQL store) acquiring an
address suspends the exchange (a ``LeaseQuery``); :meth:`IkeConfigTask.resume` records the
``LeaseAnswer`` (on the SA's leases at once, so a close gives it back) and serves the request
again from the top, which now finds that address and goes on to the next family. So what the
reply holds is decided in one place, whether the addresses came at once or one by one.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Interface, IPv6Network
from typing import TYPE_CHECKING

from pyipsec.errors import FailedCpRequired, InternalAddressFailure, PyIpsecError
from pyipsec.iana.ikev2 import CfgAttr, CfgType
from pyipsec.ike.config import PoolConfig
from pyipsec.ike.events import CloseCause, VirtualIpAssigned
from pyipsec.ike.lookups import Answer, LeaseAnswer
from pyipsec.ike.state import IkeSaState
from pyipsec.ike.task import Task, TaskStatus
from pyipsec.net.addr import IPAddress
from pyipsec.wire.message import Message
from pyipsec.wire.payloads.base import Payload
from pyipsec.wire.payloads.cp import ConfigAttribute, Configuration
from pyipsec.wire.payloads.notify import Notify

if TYPE_CHECKING:
    from pyipsec.ike.sa import IkeSa

__all__ = ["IkeConfigTask"]


def _request(versions: tuple[int, ...], asked: tuple[IPv4Address | IPv6Address, ...] = ()) -> Configuration:
    """A CFG_REQUEST; ``asked``: particular addresses to ask for (a reauthentication keeps its own)."""
    v4 = next((a for a in asked if isinstance(a, IPv4Address)), None)
    v6 = next((a for a in asked if isinstance(a, IPv6Address)), None)
    attrs: list[ConfigAttribute] = []
    if 4 in versions:
        attrs += [
            ConfigAttribute.ip4(CfgAttr.INTERNAL_IP4_ADDRESS, v4),
            ConfigAttribute(CfgAttr.INTERNAL_IP4_DNS),
        ]
    if 6 in versions:
        attrs += [
            ConfigAttribute.ip6_address(IPv6Interface(f"{v6}/128") if v6 is not None else None),
            ConfigAttribute(CfgAttr.INTERNAL_IP6_DNS),
        ]
    attrs.append(ConfigAttribute(CfgAttr.INTERNAL_DNS_DOMAIN))
    return Configuration(CfgType.CFG_REQUEST, tuple(attrs))


def _asked(cp: Configuration, version: int) -> IPv4Address | IPv6Address | None:
    """The address of family ``version`` the peer asks for by value, if any (and well-formed)."""
    for a in cp.attributes:
        try:
            if version == 4 and a.attr_type is CfgAttr.INTERNAL_IP4_ADDRESS:
                return a.ip4_value()
            if version == 6 and a.attr_type is CfgAttr.INTERNAL_IP6_ADDRESS:
                v6 = a.ip6_interface()
                return v6.ip if v6 is not None else None
        except PyIpsecError:
            return None
    return None


def lease_address(sa: IkeSa, pool: PoolConfig, who: str, requested: IPAddress | None) -> IPAddress:
    """A virtual IP from ``pool`` for the peer ``who`` (responder).

    A reauthentication (no INITIAL_CONTACT) that asks for the address an established SA of
    the same connection and peer holds takes that lease over, so the client keeps its address
    (RFC 7296 §2.8.3); otherwise the pool picks one (InternalAddressFailure when exhausted).
    The pool hears of ``requested`` too: a shared one hands it over from another gateway.
    """
    if requested is not None and not sa.initial_contact:
        for other in sa.ctx.peers(sa):
            if sa.same_peer(other) and other.active and (pool, requested) in other.leases:
                other.leases.remove((pool, requested))
                sa.log.info("virtual IP %s moves over from IKE SA #%d", requested, other.sa_id)
                return requested
    return sa.ctx.pools.acquire(pool, who, requested)


class IkeConfigTask(Task):
    def __init__(self) -> None:
        self._sent = False
        self._reply: Configuration | None = None
        self._error: InternalAddressFailure | FailedCpRequired | None = None
        self._leased: dict[int, IPAddress] = {}  # by IP version: addresses leased for this request

    # -- initiator ------------------------------------------------------------------------------

    def build_i(self, sa: IkeSa, req: list[Payload]) -> None:
        conn = sa.connection
        if self._sent or conn is None or not conn.vips:
            return
        self._sent = True
        sa.vips_requested = tuple(sorted({6 if ":" in v else 4 for v in conn.vips}))
        req.append(_request(sa.vips_requested, sa.vips_asked))

    def process_i(self, sa: IkeSa, resp: Message) -> TaskStatus:
        if not sa.vips_requested or not sa.auth_complete:
            return TaskStatus.DONE
        cp = next((c for c in resp.find_all(Configuration) if c.cfg_type is CfgType.CFG_REPLY), None)
        if cp is None:
            raise FailedCpRequired("the gateway assigned no virtual IP (no CFG_REPLY)")
        addrs: list[IPv4Address | IPv6Address] = []
        dns: list[IPv4Address | IPv6Address] = []
        subnets: list[IPv4Network | IPv6Network] = []
        domains: list[str] = []
        for a in cp.attributes:
            if a.attr_type is CfgAttr.INTERNAL_IP4_ADDRESS and (v4 := a.ip4_value()) is not None:
                addrs.append(v4)
            elif a.attr_type is CfgAttr.INTERNAL_IP6_ADDRESS and (v6 := a.ip6_interface()) is not None:
                addrs.append(v6.ip)
            elif a.attr_type is CfgAttr.INTERNAL_IP4_DNS and (d4 := a.ip4_value()) is not None:
                dns.append(d4)
            elif a.attr_type is CfgAttr.INTERNAL_IP6_DNS and (d6 := a.ip6_value()) is not None:
                dns.append(d6)
            elif a.attr_type is CfgAttr.INTERNAL_IP4_SUBNET and (n4 := a.ip4_network()) is not None:
                subnets.append(n4)
            elif a.attr_type is CfgAttr.INTERNAL_IP6_SUBNET and (n6 := a.ip6_network()) is not None:
                subnets.append(n6)
            elif a.attr_type is CfgAttr.INTERNAL_DNS_DOMAIN and a.value:
                domains.append(a.text())
        if not addrs:
            raise FailedCpRequired("the gateway's CFG_REPLY holds no virtual IP")
        sa.virtual_ips = tuple(addrs)
        sa.log.info("virtual IP %s, DNS %s", ", ".join(map(str, addrs)), ", ".join(map(str, dns)) or "none")
        sa.emit(
            VirtualIpAssigned(sa.sa_id, sa.name, tuple(addrs), tuple(dns), tuple(domains), tuple(subnets))
        )
        return TaskStatus.DONE

    # -- responder ------------------------------------------------------------------------------

    def process_r(self, sa: IkeSa, req: Message) -> None:
        self._serve_or_fail(sa)

    def resume(self, sa: IkeSa, answer: Answer) -> TaskStatus:
        """A pool behind I/O answered (``LookupPools``): keep the address, serve on."""
        try:
            if not isinstance(answer, LeaseAnswer):
                raise InternalAddressFailure(f"unexpected answer {type(answer).__name__} to a lease")
            pool = sa.ctx.config.pools.get(answer.pool)
            if answer.address is None or pool is None:
                raise InternalAddressFailure(answer.reason or f"no address from pool {answer.pool}")
            if not pool.contains(answer.address) or answer.address.version in self._leased:
                sa.ctx.pools.release(pool, answer.address)
                raise InternalAddressFailure(f"the store leased {answer.address}, not of pool {pool.name}")
            sa.leases.append((pool, answer.address))
            self._leased[answer.address.version] = answer.address
        except InternalAddressFailure as exc:
            self._failed(sa, exc)
            return TaskStatus.DONE
        self._serve_or_fail(sa)
        return TaskStatus.DONE

    def _serve_or_fail(self, sa: IkeSa) -> None:
        try:
            self._serve(sa)
        except (InternalAddressFailure, FailedCpRequired) as exc:
            self._failed(sa, exc)

    def _failed(self, sa: IkeSa, exc: InternalAddressFailure | FailedCpRequired) -> None:
        # RFC 7296 §3.15.4: the IKE SA is created, no Child SA; the client decides what to do
        sa.log.info("no virtual IP for the peer: %s", exc)
        self._error = exc
        sa.cp_failed = str(exc)

    def _serve(self, sa: IkeSa) -> None:
        first = sa.auth_first_request
        if not sa.auth_complete or first is None:
            return
        cp = next((c for c in first.find_all(Configuration) if c.cfg_type is CfgType.CFG_REQUEST), None)
        conn = sa.connection
        if cp is None or conn is None:
            return
        wanted = {4 for a in cp.attributes if a.attr_type is CfgAttr.INTERNAL_IP4_ADDRESS} | {
            6 for a in cp.attributes if a.attr_type is CfgAttr.INTERNAL_IP6_ADDRESS
        }
        if not wanted:
            return
        if not conn.pools and not sa.framed_addresses:
            raise InternalAddressFailure(
                f"peer asks for a virtual IP, but connection {conn.name} has no pools"
            )
        attrs: list[ConfigAttribute] = []
        vips: list[IPAddress] = []
        who = str(sa.remote_id) if not sa.eap_identity else sa.eap_identity
        for version in sorted(wanted):
            pool = next(
                (p for name in conn.pools if (p := sa.ctx.config.pools.get(name)) and p.version == version),
                None,
            )
            framed = next((a for a in sa.framed_addresses if a.version == version), None)
            if framed is not None:  # the AAA server's Framed-IP-Address wins over the pools
                addr = framed
                sa.log.info("assigned virtual IP %s (from RADIUS) to %s", addr, who)
            elif pool is None:
                continue
            else:
                leased = self._leased.get(version)  # on the SA's leases already
                if leased is None:
                    asked = _asked(cp, version)
                    leased = lease_address(  # may suspend: resume() comes back here
                        sa, pool, who, asked if asked is not None and pool.contains(asked) else None
                    )
                    sa.leases.append((pool, leased))
                    self._leased[version] = leased
                addr = leased
                sa.log.info("assigned virtual IP %s from pool %s to %s", addr, pool.name, who)
            vips.append(addr)
            if isinstance(addr, IPv4Address):
                attrs.append(ConfigAttribute.ip4(CfgAttr.INTERNAL_IP4_ADDRESS, addr))
            else:
                attrs.append(ConfigAttribute.ip6_address(IPv6Interface(f"{addr}/128")))
            for server in pool.dns if pool is not None else ():
                kind = CfgAttr.INTERNAL_IP4_DNS if server.version == 4 else CfgAttr.INTERNAL_IP6_DNS
                attrs.append(
                    ConfigAttribute.ip4(kind, server)
                    if isinstance(server, IPv4Address)
                    else ConfigAttribute.ip6(kind, server)
                )
            attrs += [ConfigAttribute.dns_domain(d) for d in pool.domains] if pool is not None else []
        if not vips:
            raise InternalAddressFailure(
                f"no pool of connection {conn.name} serves the address family asked for"
            )
        sa.virtual_ips += tuple(vips)
        for child in conn.children:
            for ts in child.local_ts:
                for net in ts.networks():
                    if isinstance(net, IPv4Network):
                        attrs.append(ConfigAttribute.ip4_subnet(net))
                    else:
                        attrs.append(ConfigAttribute.ip6_subnet(net))
        self._reply = Configuration(CfgType.CFG_REPLY, tuple(attrs))

    def after_response(self, sa: IkeSa) -> None:
        """Without its address the peer has no use for the SA: we delete it (no SA is left behind,
        also with clients that would keep it)."""
        if self._error is None or sa.state is not IkeSaState.ESTABLISHED:
            return
        sa.ctx.followups.delete_ike(sa, CloseCause.FAILED, f"no virtual IP for the peer: {self._error}")

    def build_r(self, sa: IkeSa, resp: list[Payload]) -> None:
        if self._error is not None:
            resp.append(Notify.from_error(self._error))
        elif self._reply is not None:
            resp.append(self._reply)
