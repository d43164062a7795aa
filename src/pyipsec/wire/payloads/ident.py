"""Identification payloads IDi and IDr (RFC 7296 §3.5).

::

    | ID Type (1) | RESERVED (3) | Identification Data ... |

Theory of operation: one class serves both payload types; ``payload_type`` says which. The
payload body (``encode_body()``: ID Type, RESERVED, data) is exactly what RFC 7296 §2.15
calls RestOfInitIDPayload / RestOfRespIDPayload, the input of the AUTH computation, so it
must be kept byte exact. The decoder checks the lengths RFC 7296 fixes (4 bytes for
ID_IPV4_ADDR, 16 for ID_IPV6_ADDR). ``str()`` renders an identity the way strongSwan shows
it (``left.ih.test``, ``10.0.0.1``, ``C=CH, O=Org, CN=host``, colon-separated hex for binary
key IDs, non-printable characters as ``?``); for a DN it walks the DER Name with a tiny
reader here, because ``wire`` must not depend on the X.509 code in ``crypto``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import KW_ONLY, dataclass, replace

from pyipsec.errors import DecodeError
from pyipsec.iana.ikev2 import IdType, PayloadType
from pyipsec.wire.buffer import Reader, Writer
from pyipsec.wire.payloads.base import register

__all__ = ["ID_PAYLOAD_TYPES", "Identification", "dn_text"]

ID_PAYLOAD_TYPES = frozenset({PayloadType.IDi, PayloadType.IDr})

_FIXED_LENGTHS = {IdType.ID_IPV4_ADDR: 4, IdType.ID_IPV6_ADDR: 16}

# Attribute short names as strongSwan prints them (libstrongswan asn1 oid table).
_DN_NAMES = {
    "2.5.4.3": "CN",
    "2.5.4.4": "SN",
    "2.5.4.5": "serialNumber",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.9": "street",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.12": "T",
    "2.5.4.13": "D",
    "2.5.4.17": "postalCode",
    "2.5.4.41": "N",
    "2.5.4.42": "G",
    "2.5.4.43": "I",
    "2.5.4.45": "ID",
    "2.5.4.46": "dnQualifier",
    "2.5.4.65": "pseudonym",
    "1.2.840.113549.1.9.1": "E",
    "0.9.2342.19200300.100.1.1": "UID",
    "0.9.2342.19200300.100.1.25": "DC",
}
_DER_SEQUENCE, _DER_SET, _DER_OID = 0x30, 0x31, 0x06
_DER_BMP_STRING, _DER_UNIVERSAL_STRING = 0x1E, 0x1C


def _der_tlv(r: Reader) -> tuple[int, bytes]:
    """One DER element (tag, contents); definite lengths up to 4 octets only."""
    tag = r.u8("DER tag")
    length = r.u8("DER length")
    if length & 0x80:
        n = length & 0x7F
        if not 1 <= n <= 4:
            raise r.fail("unsupported DER length form")
        length = int.from_bytes(r.read(n, "DER length"), "big")
    return tag, r.read(length, "DER contents")


def _oid_text(contents: bytes) -> str:
    if not contents or contents[-1] & 0x80:
        raise DecodeError("malformed OID")
    arcs: list[int] = []
    value = 0
    for byte in contents:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in (first, arcs[0] - 40 * first, *arcs[1:]))


def _der_string(tag: int, contents: bytes) -> str:
    if tag == _DER_BMP_STRING:
        return contents.decode("utf-16-be", errors="replace")
    if tag == _DER_UNIVERSAL_STRING:
        return contents.decode("utf-32-be", errors="replace")
    return contents.decode("utf-8", errors="replace")


def dn_text(der: bytes) -> str:
    """``C=CH, O=Org, CN=host`` for a DER Name; raises ``DecodeError`` if it is not one."""
    outer = Reader(der)
    tag, rdns = _der_tlv(outer)
    outer.expect_end("DN")
    if tag != _DER_SEQUENCE:
        raise DecodeError("a DN is a SEQUENCE")
    parts: list[str] = []
    r = Reader(rdns)
    while not r.at_end():
        tag, rdn = _der_tlv(r)
        if tag != _DER_SET:
            raise DecodeError("an RDN is a SET")
        rr = Reader(rdn)
        while not rr.at_end():
            tag, atv = _der_tlv(rr)
            ar = Reader(atv)
            oid_tag, oid = _der_tlv(ar)
            value_tag, value = _der_tlv(ar)
            ar.expect_end("AttributeTypeAndValue")
            if tag != _DER_SEQUENCE or oid_tag != _DER_OID:
                raise DecodeError("malformed AttributeTypeAndValue")
            dotted = _oid_text(oid)
            text = _sanitized(_der_string(value_tag, value).encode("ascii", errors="replace"))
            parts.append(f"{_DN_NAMES.get(dotted, dotted)}={text}")
    return ", ".join(parts)


def _printable(data: bytes) -> bool:
    return all(0x20 <= b < 0x7F for b in data)


def _sanitized(data: bytes) -> str:
    """Printable ASCII kept, anything else (control characters too) shown as ``?``."""
    return "".join(chr(b) if 0x20 <= b < 0x7F else "?" for b in data)


@register(PayloadType.IDi, PayloadType.IDr)
@dataclass(frozen=True, slots=True)
class Identification:
    """An IDi or IDr payload: ID type and identification data (RFC 7296 §3.5)."""

    payload_type: PayloadType
    id_type: IdType
    _: KW_ONLY
    data: bytes

    def __post_init__(self) -> None:
        if self.payload_type not in ID_PAYLOAD_TYPES:
            raise ValueError(f"an Identification payload is IDi or IDr, not {self.payload_type!r}")
        if not 0 <= self.id_type <= 255:
            raise ValueError("ID types are 8-bit values")
        id_type = IdType(self.id_type)
        object.__setattr__(self, "payload_type", PayloadType(self.payload_type))
        object.__setattr__(self, "id_type", id_type)
        want = _FIXED_LENGTHS.get(id_type)
        if want is not None and len(self.data) != want:
            raise ValueError(f"{id_type.name} data is {want} bytes")

    # -- convenience constructors -----------------------------------------------------------

    @classmethod
    def from_ip(
        cls,
        addr: str | ipaddress.IPv4Address | ipaddress.IPv6Address,
        payload_type: PayloadType = PayloadType.IDi,
    ) -> Identification:
        """ID_IPV4_ADDR or ID_IPV6_ADDR."""
        ip = ipaddress.ip_address(addr)
        id_type = IdType.ID_IPV4_ADDR if ip.version == 4 else IdType.ID_IPV6_ADDR
        return cls(payload_type, id_type, data=ip.packed)

    @classmethod
    def from_fqdn(cls, fqdn: str, payload_type: PayloadType = PayloadType.IDi) -> Identification:
        """ID_FQDN; the name must be ASCII (convert IDNs to A-labels first)."""
        return cls(payload_type, IdType.ID_FQDN, data=fqdn.encode("ascii"))

    @classmethod
    def from_rfc822(cls, address: str, payload_type: PayloadType = PayloadType.IDi) -> Identification:
        """ID_RFC822_ADDR (an e-mail address), UTF-8 encoded."""
        return cls(payload_type, IdType.ID_RFC822_ADDR, data=address.encode("utf-8"))

    @classmethod
    def from_dn(cls, der: bytes, payload_type: PayloadType = PayloadType.IDi) -> Identification:
        """ID_DER_ASN1_DN from a DER-encoded X.500 Name (e.g. a certificate's subject)."""
        return cls(payload_type, IdType.ID_DER_ASN1_DN, data=der)

    @classmethod
    def from_key_id(cls, key_id: bytes, payload_type: PayloadType = PayloadType.IDi) -> Identification:
        """ID_KEY_ID: opaque bytes."""
        return cls(payload_type, IdType.ID_KEY_ID, data=key_id)

    def with_payload_type(self, payload_type: PayloadType) -> Identification:
        """The same identity as an IDi or IDr payload."""
        return replace(self, payload_type=payload_type)

    # -- views -------------------------------------------------------------------------------

    @property
    def ip_address(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        """The address of an ID_IPV4_ADDR / ID_IPV6_ADDR identity, else None."""
        if self.id_type == IdType.ID_IPV4_ADDR:
            return ipaddress.IPv4Address(self.data)
        if self.id_type == IdType.ID_IPV6_ADDR:
            return ipaddress.IPv6Address(self.data)
        return None

    def __str__(self) -> str:
        t = self.id_type
        if t in (IdType.ID_IPV4_ADDR, IdType.ID_IPV6_ADDR):
            if not any(self.data):
                return "%any" if t == IdType.ID_IPV4_ADDR else "%any6"
            return str(self.ip_address)
        if t in (IdType.ID_FQDN, IdType.ID_RFC822_ADDR):
            return _sanitized(self.data)
        if t == IdType.ID_DER_ASN1_DN:
            try:
                return dn_text(self.data)
            except DecodeError:
                return "(invalid ID_DER_ASN1_DN)"
        if t == IdType.ID_KEY_ID:
            if _printable(self.data) and len(self.data) != 20:
                return self.data.decode("ascii")
            return ":".join(f"{b:02x}" for b in self.data)
        if t == IdType.ID_DER_ASN1_GN:
            return "(ASN.1 general name)"
        if t == IdType.ID_NULL:
            return "%null"
        return f"(unknown ID type: {int(t)})"

    # -- codec -------------------------------------------------------------------------------

    def encode_body(self) -> bytes:
        """ID Type ‖ RESERVED ‖ data: also the RestOfInit/RespIDPayload of RFC 7296 §2.15."""
        return Writer().u8(self.id_type).write(b"\x00\x00\x00").write(self.data).getvalue()

    @classmethod
    def decode_body(cls, ptype: PayloadType, r: Reader) -> Identification:
        id_type = IdType(r.u8("ID type"))
        r.read(3, "ID reserved")
        want = _FIXED_LENGTHS.get(id_type)
        if want is not None and r.remaining != want:
            raise r.fail(f"{id_type.name} data of {r.remaining} bytes, expected {want}")
        return cls(ptype, id_type, data=r.rest())
