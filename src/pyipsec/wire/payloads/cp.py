"""Configuration payload, CP (RFC 7296 §3.15).

Theory of operation: the body is ``CFG Type (1) | RESERVED (3)`` followed by attributes,
each ``R (1 bit) | Attribute Type (15 bits) | Length (2) | Value`` (RFC 7296 §3.15.1).
The R bit and RESERVED octets are sent as zero and, as the RFC says, ignored on receipt.

Attribute values stay bytes in :class:`ConfigAttribute`, but the decoder checks the length
of every attribute type whose length the RFCs fix (e.g. INTERNAL_IP4_DNS is 0 or 4 octets),
so the typed accessors (``attr.ip4()``, ``attr.ip6_interface()`` …) only fail on content a
length check cannot catch. An empty value is a request ("give me one") in CFG_REQUEST, so
the accessors return ``None`` for it. Unknown attribute types are kept verbatim.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Interface, IPv6Network
from typing import ClassVar

from pyipsec.errors import DecodeError
from pyipsec.iana.ikev2 import CfgAttr, CfgType, PayloadType
from pyipsec.wire.buffer import Reader, Writer
from pyipsec.wire.payloads.base import register

__all__ = ["IP4_ATTRIBUTES", "IP6_ATTRIBUTES", "ConfigAttribute", "Configuration", "attribute_length_problem"]

_ATTR_HEADER_LEN = 4
_R_BIT = 0x8000

IP4_ATTRIBUTES: frozenset[CfgAttr] = frozenset(
    {
        CfgAttr.INTERNAL_IP4_ADDRESS,
        CfgAttr.INTERNAL_IP4_NETMASK,
        CfgAttr.INTERNAL_IP4_DNS,
        CfgAttr.INTERNAL_IP4_NBNS,
        CfgAttr.INTERNAL_IP4_DHCP,
        CfgAttr.P_CSCF_IP4_ADDRESS,  # RFC 7651 §3
    }
)
"""Attributes whose value is one IPv4 address, or empty in a request."""

IP6_ATTRIBUTES: frozenset[CfgAttr] = frozenset(
    {CfgAttr.INTERNAL_IP6_DNS, CfgAttr.INTERNAL_IP6_DHCP, CfgAttr.P_CSCF_IP6_ADDRESS}
)
"""Attributes whose value is one IPv6 address, or empty in a request."""

# Allowed value lengths per attribute type (RFC 7296 §3.15.1 table; RFC 7651 §3).
# INTERNAL_IP6_SUBNET is "17 octets" in RFC 7296; an empty one is accepted as well, as a
# request, the way every other address attribute works (and IKEv1 mode config allowed).
_LENGTHS: dict[CfgAttr, frozenset[int]] = {
    **{a: frozenset({0, 4}) for a in IP4_ATTRIBUTES},
    **{a: frozenset({0, 16}) for a in IP6_ATTRIBUTES},
    CfgAttr.INTERNAL_IP6_ADDRESS: frozenset({0, 17}),
    CfgAttr.INTERNAL_IP4_SUBNET: frozenset({0, 8}),
    CfgAttr.INTERNAL_IP6_SUBNET: frozenset({0, 17}),
}


def attribute_length_problem(attr_type: CfgAttr, length: int) -> str | None:
    """Why ``length`` octets is wrong for ``attr_type``, or None if it is fine (or unchecked)."""
    allowed = _LENGTHS.get(attr_type)
    if allowed is not None and length not in allowed:
        sizes = " or ".join(str(n) for n in sorted(allowed))
        return f"{attr_type.name} value must be {sizes} octets, got {length}"
    if attr_type == CfgAttr.SUPPORTED_ATTRIBUTES and length % 2:
        return f"SUPPORTED_ATTRIBUTES length {length} is not a multiple of 2"
    return None


def _mask_to_prefix(mask: bytes) -> int | None:
    bits = int.from_bytes(mask, "big")
    width = 8 * len(mask)
    prefix = width - (~bits & ((1 << width) - 1)).bit_length()
    return prefix if bits == ((1 << width) - 1) ^ ((1 << (width - prefix)) - 1) else None


@dataclass(frozen=True, slots=True)
class ConfigAttribute:
    """One configuration attribute (RFC 7296 §3.15.1); ``value`` is the raw value."""

    attr_type: CfgAttr
    value: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.attr_type <= 0x7FFF:
            raise ValueError(f"attribute type {int(self.attr_type)} does not fit 15 bits")
        if len(self.value) > 0xFFFF:
            raise ValueError("attribute value longer than 65535 octets")
        problem = attribute_length_problem(self.attr_type, len(self.value))
        if problem:
            raise ValueError(problem)

    def __str__(self) -> str:
        return f"{self.attr_type.name}({self.value.hex()})"

    def _bad(self, what: str) -> DecodeError:
        return DecodeError(f"{self.attr_type.name}: {what}")

    def _expect(self, allowed: Iterable[CfgAttr]) -> None:
        if self.attr_type not in allowed:
            raise ValueError(f"{self.attr_type.name} does not have this value format")

    # ---------------------------------------------------- IPv4 address

    @classmethod
    def ip4(cls, attr_type: CfgAttr, addr: IPv4Address | str | None = None) -> ConfigAttribute:
        """INTERNAL_IP4_ADDRESS / NETMASK / DNS / NBNS / DHCP (or P_CSCF_IP4_ADDRESS); None → empty."""
        if attr_type not in IP4_ATTRIBUTES:
            raise ValueError(f"{attr_type.name} is not an IPv4 address attribute")
        return cls(attr_type, b"" if addr is None else IPv4Address(addr).packed)

    def ip4_value(self) -> IPv4Address | None:
        self._expect(IP4_ATTRIBUTES)
        if len(self.value) not in (0, 4):
            raise self._bad(f"value must be 0 or 4 octets, got {len(self.value)}")
        return IPv4Address(self.value) if self.value else None

    # ---------------------------------------------------- IPv6 address

    @classmethod
    def ip6(cls, attr_type: CfgAttr, addr: IPv6Address | str | None = None) -> ConfigAttribute:
        """INTERNAL_IP6_DNS / INTERNAL_IP6_DHCP (or P_CSCF_IP6_ADDRESS); None → empty."""
        if attr_type not in IP6_ATTRIBUTES:
            raise ValueError(f"{attr_type.name} is not an IPv6 address attribute")
        return cls(attr_type, b"" if addr is None else IPv6Address(addr).packed)

    def ip6_value(self) -> IPv6Address | None:
        self._expect(IP6_ATTRIBUTES)
        if len(self.value) not in (0, 16):
            raise self._bad(f"value must be 0 or 16 octets, got {len(self.value)}")
        return IPv6Address(self.value) if self.value else None

    # ----------------------------------------------- INTERNAL_IP6_ADDRESS

    @classmethod
    def ip6_address(cls, iface: IPv6Interface | str | None = None) -> ConfigAttribute:
        """INTERNAL_IP6_ADDRESS: address (16) | prefix length (1), e.g. "2001:db8::5/64"."""
        if iface is None:
            return cls(CfgAttr.INTERNAL_IP6_ADDRESS)
        i = IPv6Interface(iface)
        return cls(CfgAttr.INTERNAL_IP6_ADDRESS, i.ip.packed + bytes([i.network.prefixlen]))

    def ip6_interface(self) -> IPv6Interface | None:
        self._expect((CfgAttr.INTERNAL_IP6_ADDRESS,))
        if not self.value:
            return None
        return IPv6Interface((IPv6Address(self._v6_base()), self._v6_prefix()))

    # --------------------------------------------- INTERNAL_IP4/6_SUBNET

    @classmethod
    def ip4_subnet(cls, network: IPv4Network | str | None = None) -> ConfigAttribute:
        """INTERNAL_IP4_SUBNET: address (4) | netmask (4) of a protected subnet."""
        if network is None:
            return cls(CfgAttr.INTERNAL_IP4_SUBNET)
        n = IPv4Network(network, strict=False)
        return cls(CfgAttr.INTERNAL_IP4_SUBNET, n.network_address.packed + n.netmask.packed)

    def ip4_network(self) -> IPv4Network | None:
        """The subnet; host bits set in the address are masked off. Non-contiguous mask → DecodeError."""
        self._expect((CfgAttr.INTERNAL_IP4_SUBNET,))
        if not self.value:
            return None
        if len(self.value) != 8:
            raise self._bad(f"value must be 0 or 8 octets, got {len(self.value)}")
        prefix = _mask_to_prefix(self.value[4:])
        if prefix is None:
            raise self._bad(f"netmask {IPv4Address(self.value[4:])} is not contiguous")
        return IPv4Network((IPv4Address(self.value[:4]), prefix), strict=False)

    @classmethod
    def ip6_subnet(cls, network: IPv6Network | str | None = None) -> ConfigAttribute:
        """INTERNAL_IP6_SUBNET: address (16) | prefix length (1)."""
        if network is None:
            return cls(CfgAttr.INTERNAL_IP6_SUBNET)
        n = IPv6Network(network, strict=False)
        return cls(CfgAttr.INTERNAL_IP6_SUBNET, n.network_address.packed + bytes([n.prefixlen]))

    def ip6_network(self) -> IPv6Network | None:
        """The subnet; host bits set in the address are masked off."""
        self._expect((CfgAttr.INTERNAL_IP6_SUBNET,))
        if not self.value:
            return None
        return IPv6Network((IPv6Address(self._v6_base()), self._v6_prefix()), strict=False)

    def _v6_base(self) -> bytes:
        if len(self.value) != 17:
            raise self._bad(f"value must be 0 or 17 octets, got {len(self.value)}")
        return self.value[:16]

    def _v6_prefix(self) -> int:
        prefix = self.value[16]
        if prefix > 128:
            raise self._bad(f"prefix length {prefix} exceeds 128")
        return prefix

    # ------------------------------------ APPLICATION_VERSION, DNS domain

    @classmethod
    def application_version(cls, text: str = "") -> ConfigAttribute:
        """APPLICATION_VERSION: printable ASCII, not NUL-terminated (RFC 7296 §3.15.1)."""
        return cls(CfgAttr.APPLICATION_VERSION, text.encode("ascii"))

    @classmethod
    def dns_domain(cls, name: str = "") -> ConfigAttribute:
        """INTERNAL_DNS_DOMAIN (RFC 8598 §3.1): a domain in presentation format (A-labels).

        Empty in a CFG_REQUEST; one attribute per domain in a CFG_REPLY.
        """
        return cls(CfgAttr.INTERNAL_DNS_DOMAIN, name.encode("ascii"))

    def text(self) -> str:
        """The ASCII value of APPLICATION_VERSION or INTERNAL_DNS_DOMAIN."""
        self._expect((CfgAttr.APPLICATION_VERSION, CfgAttr.INTERNAL_DNS_DOMAIN))
        if not self.value.isascii():
            raise self._bad("value is not ASCII")
        return self.value.decode("ascii")

    # -------------------------------------------------- SUPPORTED_ATTRIBUTES

    @classmethod
    def supported_attributes(cls, types: Iterable[CfgAttr | int]) -> ConfigAttribute:
        """SUPPORTED_ATTRIBUTES: the 2-octet attribute types the sender understands."""
        return cls(CfgAttr.SUPPORTED_ATTRIBUTES, b"".join(int(t).to_bytes(2, "big") for t in types))

    def attribute_types(self) -> tuple[CfgAttr, ...]:
        self._expect((CfgAttr.SUPPORTED_ATTRIBUTES,))
        if len(self.value) % 2:
            raise self._bad(f"length {len(self.value)} is not a multiple of 2")
        v = self.value
        return tuple(CfgAttr(int.from_bytes(v[i : i + 2], "big")) for i in range(0, len(v), 2))


@register(PayloadType.CP)
@dataclass(frozen=True, slots=True)
class Configuration:
    """A Configuration payload (RFC 7296 §3.15): CFG type and attributes in order."""

    payload_type: ClassVar[PayloadType] = PayloadType.CP

    cfg_type: CfgType
    attributes: tuple[ConfigAttribute, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.cfg_type <= 0xFF:
            raise ValueError(f"CFG type {int(self.cfg_type)} does not fit one octet")

    def all(self, attr_type: CfgAttr) -> tuple[ConfigAttribute, ...]:
        """Every attribute of ``attr_type``, in order (many types are multi-valued)."""
        return tuple(a for a in self.attributes if a.attr_type == attr_type)

    def first(self, attr_type: CfgAttr) -> ConfigAttribute | None:
        return next((a for a in self.attributes if a.attr_type == attr_type), None)

    def encode_body(self) -> bytes:
        w = Writer().u8(self.cfg_type).write(bytes(3))
        for a in self.attributes:
            w.u16(a.attr_type).u16(len(a.value)).write(a.value)
        return w.getvalue()

    @classmethod
    def decode_body(cls, ptype: PayloadType, r: Reader) -> Configuration:
        cfg_type = CfgType(r.u8("CFG Type"))
        r.read(3, "CP RESERVED")
        attrs: list[ConfigAttribute] = []
        while not r.at_end():
            attr_type = CfgAttr(r.u16("attribute type") & ~_R_BIT)  # R: ignored on receipt
            length = r.u16("attribute length")
            problem = attribute_length_problem(attr_type, length)
            if problem:
                raise r.fail(problem)
            attrs.append(ConfigAttribute(attr_type, r.read(length, "attribute value")))
        return cls(cfg_type, tuple(attrs))
