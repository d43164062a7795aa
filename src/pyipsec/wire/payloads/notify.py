"""Notify payload (RFC 7296 §3.10) and the typed notification data the engine uses.

Theory of operation: :class:`Notify` is the generic payload — Protocol ID, SPI and
Notify Message Type, then opaque Notification Data — and its ``decode_body`` checks only
that structure, so one odd notification never makes a whole message undecodable.
Meaning is applied on demand: a classmethod builds each notification the engine sends
(``Notify.invalid_ke(group)``, ``Notify.cookie(data)`` …) and a matching accessor reads
it back (``notify.wanted_group()``, ``notify.cookie_data()`` …). Accessors raise
:class:`~pyipsec.errors.DecodeError` when the data breaks its RFC format, and
``ValueError`` when called on a notification of another type (a programming error).

Status notifications defined to carry no data are checked with :meth:`Notify.check_no_data`;
for the MOBIKE ones RFC 4555 says received data MUST be ignored, so they pass regardless.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import ClassVar

from pyipsec.errors import DecodeError, IkeError
from pyipsec.iana.base import OpenIntEnum
from pyipsec.iana.ikev2 import HashAlgorithm, NotifyType, PayloadType, ProtocolId
from pyipsec.iana.transforms import KeId
from pyipsec.wire.buffer import Reader, Writer
from pyipsec.wire.payloads.base import register

__all__ = [
    "COOKIE2_MAX_LEN",
    "COOKIE2_MIN_LEN",
    "COOKIE_MAX_LEN",
    "COOKIE_MIN_LEN",
    "DATA_IGNORED_TYPES",
    "NAT_DETECTION_HASH_LEN",
    "NO_DATA_TYPES",
    "GatewayIdentityType",
    "GatewayRedirect",
    "IpcompSupported",
    "NoNatsAllowed",
    "Notify",
]

IPAddress = IPv4Address | IPv6Address

COOKIE_MIN_LEN = 1
COOKIE_MAX_LEN = 64
"""RFC 7296 §2.6: COOKIE data is between 1 and 64 octets (inclusive)."""
COOKIE2_MIN_LEN = 8
COOKIE2_MAX_LEN = 64
"""RFC 4555 §4.2.5: COOKIE2 data is between 8 and 64 octets (inclusive)."""
NAT_DETECTION_HASH_LEN = 20
"""RFC 7296 §2.23: NAT_DETECTION_*_IP data is a SHA-1 digest."""

NO_DATA_TYPES: frozenset[NotifyType] = frozenset(
    {
        NotifyType.INITIAL_CONTACT,  # RFC 7296 §3.10.1
        NotifyType.USE_TRANSPORT_MODE,  # RFC 7296 §3.10.1
        NotifyType.ESP_TFC_PADDING_NOT_SUPPORTED,  # RFC 7296 §3.10.1
        NotifyType.MOBIKE_SUPPORTED,  # RFC 4555 §4.2.1
        NotifyType.NO_ADDITIONAL_ADDRESSES,  # RFC 4555 §4.2.3
        NotifyType.UPDATE_SA_ADDRESSES,  # RFC 4555 §4.2.4
        NotifyType.REDIRECT_SUPPORTED,  # RFC 5685 §8
        NotifyType.EAP_ONLY_AUTHENTICATION,  # RFC 5998 §3
        NotifyType.CHILDLESS_IKEV2_SUPPORTED,  # RFC 6023 §3
        NotifyType.IKEV2_FRAGMENTATION_SUPPORTED,  # RFC 7383 §2.3
    }
)
"""Status notifications whose Notification Data is empty by definition."""

DATA_IGNORED_TYPES: frozenset[NotifyType] = frozenset(
    {NotifyType.MOBIKE_SUPPORTED, NotifyType.NO_ADDITIONAL_ADDRESSES, NotifyType.UPDATE_SA_ADDRESSES}
)
"""RFC 4555 §4.2.1/§4.2.3/§4.2.4: data MUST be empty when sent and MUST be ignored on receipt."""


class GatewayIdentityType(OpenIntEnum):
    """Gateway Identity Types of REDIRECT / REDIRECTED_FROM (RFC 5685 §8, IANA)."""

    IPV4_ADDR = 1
    IPV6_ADDR = 2
    FQDN = 3


@dataclass(frozen=True, slots=True)
class IpcompSupported:
    """IPCOMP_SUPPORTED data: CPI, IPComp Transform ID and transform-defined attributes."""

    cpi: int
    transform_id: int
    attributes: bytes = b""


@dataclass(frozen=True, slots=True)
class GatewayRedirect:
    """REDIRECT / REDIRECTED_FROM data: a gateway (address or FQDN) and, in IKE_SA_INIT, Ni."""

    gateway: IPv4Address | IPv6Address | str
    nonce: bytes = b""


@dataclass(frozen=True, slots=True)
class NoNatsAllowed:
    """NO_NATS_ALLOWED data (RFC 4555 §4.2.6): the addresses and ports the packet used."""

    src_addr: IPv4Address | IPv6Address
    dst_addr: IPv4Address | IPv6Address
    src_port: int
    dst_port: int

    def __post_init__(self) -> None:
        if self.src_addr.version != self.dst_addr.version:
            raise ValueError("NO_NATS_ALLOWED addresses must be of one family")
        for port in (self.src_port, self.dst_port):
            if not 0 <= port <= 0xFFFF:
                raise ValueError(f"port {port} out of range")


def _bad(notify_type: NotifyType, what: str) -> DecodeError:
    return DecodeError(f"{notify_type.name}: {what}")


def _addr(value: str | IPAddress) -> IPAddress:
    return ip_address(value) if isinstance(value, str) else value


@register(PayloadType.N)
@dataclass(frozen=True, slots=True)
class Notify:
    """A Notify payload (RFC 7296 §3.10).

    ``protocol`` and ``spi`` name the SA the notification concerns; both are empty
    (``ProtocolId.NONE``, ``b""``) for notifications about the IKE SA or none. RFC 7296
    says the Protocol ID MUST be ignored on receipt when the SPI is empty, so decode keeps
    it as sent and never rejects it.
    """

    payload_type: ClassVar[PayloadType] = PayloadType.N

    protocol: ProtocolId
    spi: bytes
    notify_type: NotifyType
    data: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.protocol <= 0xFF:
            raise ValueError(f"protocol id {int(self.protocol)} does not fit one octet")
        if len(self.spi) > 0xFF:
            raise ValueError("SPI longer than 255 octets")
        if not 0 <= self.notify_type <= 0xFFFF:
            raise ValueError(f"notify type {int(self.notify_type)} does not fit two octets")

    # ------------------------------------------------------------------ codec

    def encode_body(self) -> bytes:
        w = Writer().u8(self.protocol).u8(len(self.spi)).u16(self.notify_type)
        return w.write(self.spi).write(self.data).getvalue()

    @classmethod
    def decode_body(cls, ptype: PayloadType, r: Reader) -> Notify:
        """Protocol ID (1) | SPI Size (1) | Notify Message Type (2) | SPI | Notification Data."""
        protocol = ProtocolId(r.u8("notify protocol id"))
        spi_size = r.u8("notify SPI size")
        notify_type = NotifyType(r.u16("notify message type"))
        spi = r.read(spi_size, "notify SPI")
        return cls(protocol, spi, notify_type, r.rest())

    # ------------------------------------------------------------ generic

    @property
    def is_error(self) -> bool:
        """Error types are 0-16383 (RFC 7296 §3.10.1)."""
        return self.notify_type.is_error

    @classmethod
    def of(cls, notify_type: NotifyType, data: bytes = b"") -> Notify:
        """A notification about no particular SA (Protocol ID 0, no SPI)."""
        if data and notify_type in NO_DATA_TYPES:
            raise ValueError(f"{notify_type.name} carries no data")
        return cls(ProtocolId.NONE, b"", notify_type, data)

    @classmethod
    def from_error(cls, err: IkeError, *, protocol: ProtocolId = ProtocolId.NONE, spi: bytes = b"") -> Notify:
        """The error Notify that answers ``err`` (its ``notify`` type and ``notify_data()``)."""
        return cls(protocol, spi, err.notify, err.notify_data())

    def check_no_data(self) -> None:
        """For a notification defined without data (:data:`NO_DATA_TYPES`): raise DecodeError if it has some.

        Types in :data:`DATA_IGNORED_TYPES` pass even with data (RFC 4555 says ignore it).
        """
        if self.data and self.notify_type not in DATA_IGNORED_TYPES:
            raise _bad(self.notify_type, f"unexpected {len(self.data)} octets of notification data")

    def _expect(self, *types: NotifyType) -> None:
        if self.notify_type not in types:
            names = "/".join(t.name for t in types)
            raise ValueError(f"{self.notify_type.name} is not {names}")

    def _u32(self, notify_type: NotifyType) -> int:
        self._expect(notify_type)
        if len(self.data) != 4:
            raise _bad(self.notify_type, f"data must be 4 octets, got {len(self.data)}")
        return int.from_bytes(self.data, "big")

    # ----------------------------------------------- INVALID_KE_PAYLOAD

    @classmethod
    def invalid_ke(cls, group: KeId | int) -> Notify:
        """INVALID_KE_PAYLOAD naming the group the responder wants (RFC 7296 §1.3, §3.10.1)."""
        return cls.of(NotifyType.INVALID_KE_PAYLOAD, int(group).to_bytes(2, "big"))

    def wanted_group(self) -> KeId:
        """The two-octet accepted KE method of an INVALID_KE_PAYLOAD."""
        self._expect(NotifyType.INVALID_KE_PAYLOAD)
        if len(self.data) != 2:
            raise _bad(self.notify_type, f"data must be 2 octets, got {len(self.data)}")
        return KeId(int.from_bytes(self.data, "big"))

    # ---------------------------------------------------- NAT detection

    @classmethod
    def nat_detection_source_ip(cls, digest: bytes) -> Notify:
        return cls._nat_detection(NotifyType.NAT_DETECTION_SOURCE_IP, digest)

    @classmethod
    def nat_detection_destination_ip(cls, digest: bytes) -> Notify:
        return cls._nat_detection(NotifyType.NAT_DETECTION_DESTINATION_IP, digest)

    @classmethod
    def _nat_detection(cls, notify_type: NotifyType, digest: bytes) -> Notify:
        if len(digest) != NAT_DETECTION_HASH_LEN:
            raise ValueError(f"NAT detection digest must be {NAT_DETECTION_HASH_LEN} octets")
        return cls.of(notify_type, digest)

    def nat_hash(self) -> bytes:
        """SHA-1(SPIi | SPIr | IP | Port) of a NAT_DETECTION_*_IP (RFC 7296 §2.23)."""
        self._expect(NotifyType.NAT_DETECTION_SOURCE_IP, NotifyType.NAT_DETECTION_DESTINATION_IP)
        if len(self.data) != NAT_DETECTION_HASH_LEN:
            raise _bad(self.notify_type, f"data must be 20 octets, got {len(self.data)}")
        return self.data

    # -------------------------------------------------- COOKIE, COOKIE2

    @classmethod
    def cookie(cls, data: bytes) -> Notify:
        """COOKIE (RFC 7296 §2.6): 1..64 opaque octets."""
        if not COOKIE_MIN_LEN <= len(data) <= COOKIE_MAX_LEN:
            raise ValueError("COOKIE data must be 1..64 octets")
        return cls.of(NotifyType.COOKIE, data)

    @classmethod
    def cookie2(cls, data: bytes) -> Notify:
        """COOKIE2 (RFC 4555 §4.2.5): 8..64 unpredictable octets."""
        if not COOKIE2_MIN_LEN <= len(data) <= COOKIE2_MAX_LEN:
            raise ValueError("COOKIE2 data must be 8..64 octets")
        return cls.of(NotifyType.COOKIE2, data)

    def cookie_data(self) -> bytes:
        """The opaque data of a COOKIE or COOKIE2, length-checked per its RFC."""
        self._expect(NotifyType.COOKIE, NotifyType.COOKIE2)
        lo, hi = (
            (COOKIE_MIN_LEN, COOKIE_MAX_LEN)
            if self.notify_type == NotifyType.COOKIE
            else (COOKIE2_MIN_LEN, COOKIE2_MAX_LEN)
        )
        if not lo <= len(self.data) <= hi:
            raise _bad(self.notify_type, f"data must be {lo}..{hi} octets, got {len(self.data)}")
        return self.data

    # ----------------------------------------------------------- REKEY_SA

    @classmethod
    def rekey_sa(cls, protocol: ProtocolId, spi: bytes) -> Notify:
        """REKEY_SA: the Child SA being rekeyed is named in the header (RFC 7296 §3.10.1)."""
        if protocol not in (ProtocolId.ESP, ProtocolId.AH) or len(spi) != 4:
            raise ValueError("REKEY_SA names an ESP or AH SA by its 4-octet SPI")
        return cls(protocol, spi, NotifyType.REKEY_SA)

    def rekey_spi(self) -> bytes:
        """The 4-octet ESP/AH SPI of a REKEY_SA (the inbound SPI of the sender's old SA)."""
        self._expect(NotifyType.REKEY_SA)
        if self.protocol not in (ProtocolId.ESP, ProtocolId.AH):
            raise _bad(self.notify_type, f"protocol must be ESP or AH, got {self.protocol.name}")
        if len(self.spi) != 4:
            raise _bad(self.notify_type, f"SPI must be 4 octets, got {len(self.spi)}")
        return self.spi

    # ------------------------------------- SET_WINDOW_SIZE, AUTH_LIFETIME

    @classmethod
    def set_window_size(cls, window: int) -> Notify:
        """SET_WINDOW_SIZE (RFC 7296 §2.3): outstanding requests allowed, 4 octets."""
        return cls.of(NotifyType.SET_WINDOW_SIZE, window.to_bytes(4, "big"))

    def window_size(self) -> int:
        return self._u32(NotifyType.SET_WINDOW_SIZE)

    @classmethod
    def auth_lifetime(cls, seconds: int) -> Notify:
        """AUTH_LIFETIME (RFC 4478 §3): seconds until reauthentication, 4 octets."""
        return cls.of(NotifyType.AUTH_LIFETIME, seconds.to_bytes(4, "big"))

    def lifetime_seconds(self) -> int:
        return self._u32(NotifyType.AUTH_LIFETIME)

    # --------------------------------------------------- IPCOMP_SUPPORTED

    @classmethod
    def ipcomp_supported(cls, cpi: int, transform_id: int, attributes: bytes = b"") -> Notify:
        """IPCOMP_SUPPORTED (RFC 7296 §3.10.1): CPI (2) | Transform ID (1) | attributes."""
        data = Writer().u16(cpi).u8(transform_id).write(attributes).getvalue()
        return cls.of(NotifyType.IPCOMP_SUPPORTED, data)

    def ipcomp(self) -> IpcompSupported:
        self._expect(NotifyType.IPCOMP_SUPPORTED)
        if len(self.data) < 3:
            raise _bad(self.notify_type, f"data must be at least 3 octets, got {len(self.data)}")
        return IpcompSupported(int.from_bytes(self.data[:2], "big"), self.data[2], self.data[3:])

    # ------------------------------------------ SIGNATURE_HASH_ALGORITHMS

    @classmethod
    def signature_hash_algorithms(cls, algorithms: Iterable[HashAlgorithm | int]) -> Notify:
        """SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4): 16-bit identifiers, no padding."""
        data = b"".join(int(a).to_bytes(2, "big") for a in algorithms)
        return cls.of(NotifyType.SIGNATURE_HASH_ALGORITHMS, data)

    def hash_algorithms(self) -> tuple[HashAlgorithm, ...]:
        self._expect(NotifyType.SIGNATURE_HASH_ALGORITHMS)
        if len(self.data) % 2:
            raise _bad(self.notify_type, f"data length {len(self.data)} is not a multiple of 2")
        return tuple(
            HashAlgorithm(int.from_bytes(self.data[i : i + 2], "big")) for i in range(0, len(self.data), 2)
        )

    # ----------------------------------------- ADDITIONAL_IP4/6_ADDRESS

    @classmethod
    def additional_address(cls, addr: str | IPAddress) -> Notify:
        """ADDITIONAL_IP4_ADDRESS or ADDITIONAL_IP6_ADDRESS by family (RFC 4555 §4.2.2)."""
        a = _addr(addr)
        ntype = NotifyType.ADDITIONAL_IP4_ADDRESS if a.version == 4 else NotifyType.ADDITIONAL_IP6_ADDRESS
        return cls.of(ntype, a.packed)

    def address(self) -> IPAddress:
        """The address of an ADDITIONAL_IP4_ADDRESS (4 octets) or ADDITIONAL_IP6_ADDRESS (16)."""
        self._expect(NotifyType.ADDITIONAL_IP4_ADDRESS, NotifyType.ADDITIONAL_IP6_ADDRESS)
        if self.notify_type == NotifyType.ADDITIONAL_IP4_ADDRESS:
            if len(self.data) != 4:
                raise _bad(self.notify_type, f"data must be 4 octets, got {len(self.data)}")
            return IPv4Address(self.data)
        if len(self.data) != 16:
            raise _bad(self.notify_type, f"data must be 16 octets, got {len(self.data)}")
        return IPv6Address(self.data)

    # ----------------------------------------- REDIRECT, REDIRECTED_FROM

    @classmethod
    def redirect(cls, gateway: IPAddress | str, nonce: bytes = b"") -> Notify:
        """REDIRECT (RFC 5685 §8); ``nonce`` is the initiator's Ni, only in IKE_SA_INIT.

        A ``str`` gateway that parses as an IP address is sent as one, otherwise as an FQDN.
        """
        return cls.of(NotifyType.REDIRECT, _encode_gateway(gateway) + nonce)

    @classmethod
    def redirected_from(cls, gateway: IPAddress | str) -> Notify:
        """REDIRECTED_FROM (RFC 5685 §8): the gateway that redirected us, no nonce."""
        return cls.of(NotifyType.REDIRECTED_FROM, _encode_gateway(gateway))

    def redirect_data(self) -> GatewayRedirect:
        """GW Ident Type (1) | GW Ident Len (1) | GW Identity | [Nonce Data] (RFC 5685 §8)."""
        self._expect(NotifyType.REDIRECT, NotifyType.REDIRECTED_FROM)
        r = Reader(self.data)
        gw_type = GatewayIdentityType(r.u8("GW Ident Type"))
        ident = r.read(r.u8("GW Ident Len"), "GW Identity")
        gateway: IPAddress | str
        if gw_type == GatewayIdentityType.IPV4_ADDR:
            if len(ident) != 4:
                raise _bad(self.notify_type, "IPv4 gateway identity must be 4 octets")
            gateway = IPv4Address(ident)
        elif gw_type == GatewayIdentityType.IPV6_ADDR:
            if len(ident) != 16:
                raise _bad(self.notify_type, "IPv6 gateway identity must be 16 octets")
            gateway = IPv6Address(ident)
        elif gw_type == GatewayIdentityType.FQDN:
            if not ident or not ident.isascii():
                raise _bad(self.notify_type, "FQDN gateway identity must be non-empty ASCII")
            gateway = ident.decode("ascii")
        else:
            raise _bad(self.notify_type, f"unknown gateway identity type {int(gw_type)}")
        nonce = r.rest()
        if nonce and self.notify_type == NotifyType.REDIRECTED_FROM:
            raise _bad(self.notify_type, "trailing data after the gateway identity")
        return GatewayRedirect(gateway, nonce)

    # ----------------------------------------------------- NO_NATS_ALLOWED

    @classmethod
    def no_nats_allowed(
        cls, src_addr: str | IPAddress, dst_addr: str | IPAddress, src_port: int, dst_port: int
    ) -> Notify:
        """NO_NATS_ALLOWED (RFC 4555 §4.2.6): src addr | dst addr | src port | dst port."""
        info = NoNatsAllowed(_addr(src_addr), _addr(dst_addr), src_port, dst_port)
        data = Writer().write(info.src_addr.packed).write(info.dst_addr.packed)
        return cls.of(NotifyType.NO_NATS_ALLOWED, data.u16(src_port).u16(dst_port).getvalue())

    def no_nats(self) -> NoNatsAllowed:
        """12 octets for IPv4, 36 for IPv6."""
        self._expect(NotifyType.NO_NATS_ALLOWED)
        n = len(self.data)
        if n == 12:
            src: IPAddress = IPv4Address(self.data[0:4])
            dst: IPAddress = IPv4Address(self.data[4:8])
        elif n == 36:
            src, dst = IPv6Address(self.data[0:16]), IPv6Address(self.data[16:32])
        else:
            raise _bad(self.notify_type, f"data must be 12 or 36 octets, got {n}")
        ports = self.data[-4:]
        return NoNatsAllowed(src, dst, int.from_bytes(ports[:2], "big"), int.from_bytes(ports[2:], "big"))


def _encode_gateway(gateway: IPAddress | str) -> bytes:
    if isinstance(gateway, str):
        try:
            addr = ip_address(gateway)
        except ValueError:
            return _encode_fqdn(gateway)
    else:
        addr = gateway
    gw_type = GatewayIdentityType.IPV4_ADDR if addr.version == 4 else GatewayIdentityType.IPV6_ADDR
    return bytes([gw_type, len(addr.packed)]) + addr.packed


def _encode_fqdn(fqdn: str) -> bytes:
    ident = fqdn.encode("ascii")
    if not 1 <= len(ident) <= 0xFF:
        raise ValueError("FQDN gateway identity must be 1..255 octets")
    return bytes([GatewayIdentityType.FQDN, len(ident)]) + ident
