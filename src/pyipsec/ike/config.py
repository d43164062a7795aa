"""The engine's view of its configuration: plain frozen dataclasses, no parsing.

The daemon builds these from the validated TOML model (``config.model``); tests build them
directly. Keeping them here means the protocol core depends on neither pydantic nor files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from ipaddress import IPv4Address, IPv6Address, ip_address

from pyipsec.childsa import EspMode
from pyipsec.iana.ikev2 import IdType
from pyipsec.ike.proposal import ProposalSpec
from pyipsec.ike.retransmit import RetransmitPolicy
from pyipsec.wire.payloads.ident import Identification, dn_text
from pyipsec.wire.payloads.ts import TrafficSelector

__all__ = [
    "AuthClass",
    "AuthConfig",
    "ChildConfig",
    "ConnectionConfig",
    "EngineConfig",
    "Identity",
    "PoolConfig",
    "SendCert",
]


class AuthClass(Enum):
    """How one side of a connection authenticates (swanctl ``auth``)."""

    PSK = "psk"
    PUBKEY = "pubkey"
    EAP_MSCHAPV2 = "eap-mschapv2"
    EAP_TLS = "eap-tls"
    EAP_RADIUS = "eap-radius"  # gateway: EAP passed through to a RADIUS server
    EAP = "eap"  # client: whichever method the gateway asks for

    @property
    def is_eap(self) -> bool:
        return self not in (AuthClass.PSK, AuthClass.PUBKEY)


class SendCert(Enum):
    ALWAYS = "always"
    IFASKED = "ifasked"
    NEVER = "never"


@dataclass(frozen=True, slots=True)
class Identity:
    """An IKE identity (RFC 7296 §3.5), or the wildcard ``%any`` when ``id_type`` is None."""

    id_type: IdType | None
    data: bytes = b""

    @classmethod
    def any(cls) -> Identity:
        return _ANY_IDENTITY

    @classmethod
    def fqdn(cls, name: str) -> Identity:
        return cls(IdType.ID_FQDN, name.encode("ascii"))

    @classmethod
    def ip(cls, addr: str) -> Identity:
        a = ip_address(addr)
        return cls(IdType.ID_IPV4_ADDR if a.version == 4 else IdType.ID_IPV6_ADDR, a.packed)

    @classmethod
    def from_payload(cls, p: Identification) -> Identity:
        return cls(p.id_type, p.data)

    @property
    def is_any(self) -> bool:
        return self.id_type is None

    def matches(self, other: Identity) -> bool:
        """True if ``other`` (a concrete peer identity) satisfies this configured one."""
        if self.is_any:
            return True
        return self.id_type == other.id_type and self.data == other.data

    def __str__(self) -> str:
        if self.id_type is None:
            return "%any"
        if self.id_type in (IdType.ID_IPV4_ADDR, IdType.ID_IPV6_ADDR):
            return str(ip_address(self.data))
        if self.id_type in (IdType.ID_FQDN, IdType.ID_RFC822_ADDR):
            return self.data.decode("utf-8", "replace")
        if self.id_type == IdType.ID_DER_ASN1_DN:
            return dn_text(self.data)
        return "#" + self.data.hex()


_ANY_IDENTITY = Identity(None)  # (immutable: one for every SA)


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """One side's authentication round (swanctl ``local`` / ``remote``)."""

    auth: AuthClass
    identity: Identity = field(default_factory=Identity.any)
    certs: tuple[bytes, ...] = ()  # DER, end entity first (local side)
    cacerts: tuple[bytes, ...] = ()  # DER trust anchors (remote side)
    rsa_pss: bool = False  # sign with RSASSA-PSS rather than PKCS#1 v1.5 (strongSwan's auth = rsa/pss)
    eap_identity: str = ""  # EAP peer: the user name sent in EAP-Identity (default: the IKE identity)
    # remote certificates: swanctl's revocation policy, "strict", "ifuri" or "relaxed"
    revocation: str = "relaxed"


@dataclass(frozen=True, slots=True)
class ChildConfig:
    name: str
    local_ts: tuple[TrafficSelector, ...]
    remote_ts: tuple[TrafficSelector, ...]
    esp_proposals: tuple[ProposalSpec, ...]
    mode: EspMode = EspMode.TUNNEL
    rekey_time: float = 3600.0
    life_time: float = 3960.0
    rand_time: float | None = None  # the most the soft lifetime is brought forward; None: a tenth
    replay_window: int = 1024
    # volume limits, enforced by the data plane (0: none): rekey at the soft one, delete at the hard
    rekey_bytes: int = 0
    life_bytes: int = 0
    rekey_packets: int = 0
    life_packets: int = 0


@dataclass(frozen=True, slots=True)
class ConnectionConfig:
    name: str
    local_addrs: tuple[str, ...]  # "%any" or literal addresses
    remote_addrs: tuple[str, ...]
    proposals: tuple[ProposalSpec, ...]
    local: AuthConfig
    remote: AuthConfig
    children: tuple[ChildConfig, ...] = ()
    local_port: int = 500
    remote_port: int = 500
    encap: bool = False  # force UDP encapsulation (fake a NAT)
    mobike: bool = True
    fragmentation: bool = True
    send_certreq: bool = True
    send_cert: SendCert = SendCert.IFASKED
    dpd_delay: float = 0.0  # seconds of silence before a liveness check; 0: none
    rekey_time: float = 14400.0  # IKE SA soft lifetime; 0: never rekey
    # reauthenticate (a new IKE SA, make-before-break, RFC 7296 §2.8.3) this often; 0: never.
    # Initiator: schedules it (with jitter); responder: announces it as AUTH_LIFETIME (RFC 4478)
    reauth_time: float = 0.0
    signature_hashes: bool = True  # announce SIGNATURE_HASH_ALGORITHMS (RFC 7427) in IKE_SA_INIT
    pools: tuple[str, ...] = ()  # responder: virtual IPs for peers that ask (CP, RFC 7296 §3.15)
    vips: tuple[str, ...] = ()  # initiator: ask for virtual IPs, e.g. ("0.0.0.0", "::")
    # further authentication rounds (RFC 4739; swanctl's local-2/remote-2): a machine
    # certificate in the first round, a user's EAP in the second
    local_more: tuple[AuthConfig, ...] = ()
    remote_more: tuple[AuthConfig, ...] = ()
    # RFC 5685 (ike.redirect), initiator: announce REDIRECT_SUPPORTED and follow redirects;
    # gateways besides remote_addrs an unauthenticated (IKE_SA_INIT) redirect may send us to
    redirect: bool = True
    redirect_allow: tuple[str, ...] = ()

    @property
    def local_rounds(self) -> tuple[AuthConfig, ...]:
        return (self.local, *self.local_more)

    @property
    def remote_rounds(self) -> tuple[AuthConfig, ...]:
        return (self.remote, *self.remote_more)

    def matches_addresses(self, local: str, remote: str) -> bool:
        def ok(configured: tuple[str, ...], actual: str) -> bool:
            return not configured or any(c in ("%any", "0.0.0.0", "::") or c == actual for c in configured)

        return ok(self.local_addrs, local) and ok(self.remote_addrs, remote)

    def child(self, name: str) -> ChildConfig | None:
        return next((c for c in self.children if c.name == name), None)


@dataclass(frozen=True, slots=True)
class PoolConfig:
    """An address pool for virtual IPs and what goes with them in the CP reply."""

    name: str
    first: IPv4Address | IPv6Address
    last: IPv4Address | IPv6Address
    dns: tuple[IPv4Address | IPv6Address, ...] = ()
    domains: tuple[str, ...] = ()  # INTERNAL_DNS_DOMAIN (RFC 8598)

    @property
    def version(self) -> int:
        return self.first.version

    def contains(self, addr: IPv4Address | IPv6Address) -> bool:
        return addr.version == self.version and int(self.first) <= int(addr) <= int(self.last)


@dataclass(frozen=True, slots=True)
class EngineConfig:
    connections: Mapping[str, ConnectionConfig]
    pools: Mapping[str, PoolConfig] = field(default_factory=dict)
    retransmit: RetransmitPolicy = field(default_factory=RetransmitPolicy)
    cookie_threshold: int = 10  # half-open SAs before COOKIEs are demanded (RFC 7296 §2.6)
    # ... or half-open SAs from one source address (strongSwan's cookie_threshold_ip)
    cookie_threshold_ip: int = 3
    # a source address with this many half-open SAs has its further IKE_SA_INITs dropped, even
    # with a valid cookie (strongSwan's block_threshold; RELIABILITY.md §7)
    block_threshold: int = 5
    # above this many half-open SAs in all, new IKE_SA_INITs are dropped (strongSwan's
    # init_limit_half_open, there 0 = unlimited). Finite by default (RELIABILITY.md §7: about ten
    # times the handshakes per second we can complete): a cookie-answering flood then holds at
    # most this many SAs (a few KB each, released after half_open_timeout) and this much DH work
    # per timeout, while established SAs and retransmissions of known half-open SAs still work.
    init_limit_half_open: int = 1000
    half_open_timeout: float = 30.0
    # IKE fragments (RFC 7383) held for reassembly across all SAs; beyond it new fragments are
    # dropped and counted (each SA and direction also has its own limit, ike.fragment)
    fragment_budget: int = 4 * 1024 * 1024
    nat_t_port: int = 4500
    keepalive_interval: float = 20.0  # NAT keepalives when we are behind a NAT (RFC 3948 §4); 0: off
    fragment_size: int = 1280  # largest IKE datagram before fragmenting (RFC 7383 §2.5.1; IPv6 minimum MTU)
    # the host can check revocation beyond the certificates' own URIs (CRLs or OCSP responders
    # configured): then even the "relaxed" policy asks (ike.lookups.RevocationQuery)
    revocation_sources: bool = False
    # emit IkeKeysDerived with the IKE SA keys (the host's save_keys writes them for Wireshark)
    export_ike_keys: bool = False
