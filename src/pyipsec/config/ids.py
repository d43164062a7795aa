"""IKE identities written the way strongSwan writes them (RFC 7296 §3.5).

Theory of operation: :func:`parse_identity` turns a config string into an :class:`Identity`,
the (ID Type, Identification Data) pair that goes into an IDi/IDr payload, following
strongSwan's rules so an ``id = ...`` line means the same thing in both daemons:

- an explicit type prefix wins: ``ipv4:``, ``ipv6:``, ``fqdn:``/``dns:``, ``rfc822:``/``email:``/
  ``userfqdn:``, ``asn1dn:``, ``keyid:``, or a numeric ``{11}:``; after a prefix, ``#hex`` gives
  the raw data in hexadecimal;
- a string containing ``=`` is a Distinguished Name, ``C=CH, O=strongSwan, CN=moon`` (or
  ``/C=CH/O=strongSwan/CN=moon``), encoded to DER in the order written (ID_DER_ASN1_DN); each
  value is a PrintableString when its characters allow, else a UTF8String, and an e-mail
  address an IA5String, as strongSwan's ``pki`` tool encodes certificate subjects;
- ``%any`` (also ``%any6``, ``*``, ``0.0.0.0``, ``::`` and the empty string) is the wildcard;
- an IPv4 or IPv6 literal is ID_IPV4_ADDR / ID_IPV6_ADDR (the 4 or 16 address octets);
- ``@#hex`` is ID_KEY_ID, ``@@user@host`` and ``user@host`` are ID_RFC822_ADDR, ``@name`` and
  a bare ``name`` are ID_FQDN (the leading ``@`` keeps a name from being read as an address).

Unlike strongSwan, a DN with an unknown attribute keyword or a malformed literal is an error
instead of silently becoming a KEY_ID. :meth:`Identity.matches` compares a configured
identity with one a peer sent: ``%any`` matches everything, FQDN and RFC822 names compare
without regard to case and may start with ``*`` to match any prefix (``*@example.org``), and a
DN matches RDN by RDN, where a value of ``*`` matches any value of that attribute.
"""

from __future__ import annotations

import binascii
import ipaddress
import re
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID, ObjectIdentifier

from pyipsec.errors import ConfigError
from pyipsec.iana.ikev2 import IdType

__all__ = ["IDENTITY_ANY", "DN_ATTRIBUTES", "Identity", "parse_identity"]


@dataclass(frozen=True, slots=True)
class Identity:
    """An IKE identity: ``id_type`` and the Identification Data octets (RFC 7296 §3.5).

    ``id_type`` is ``None`` for the wildcard ``%any``, which never goes on the wire. ``text``
    is the string it was parsed from (not part of equality).
    """

    id_type: IdType | None
    data: bytes
    text: str = field(default="", compare=False)

    @property
    def is_any(self) -> bool:
        """True for the wildcard ``%any``."""
        return self.id_type is None

    @property
    def has_wildcards(self) -> bool:
        """True if this identity matches more than one peer identity."""
        if self.id_type is None:
            return True
        if self.id_type in (IdType.ID_FQDN, IdType.ID_RFC822_ADDR):
            return self.data.startswith(b"*")
        if self.id_type == IdType.ID_DER_ASN1_DN:
            try:
                return any(value == b"*" for _, _, value in _dn_rdns(self.data))
            except ValueError:
                return False
        return False

    def matches(self, peer: Identity) -> bool:
        """Whether ``peer`` (an identity received from a peer) satisfies this one."""
        if self.id_type is None:
            return True
        if peer.id_type != self.id_type:
            return False
        if self.id_type in (IdType.ID_FQDN, IdType.ID_RFC822_ADDR):
            mine, theirs = self.data.lower(), peer.data.lower()
            if mine.startswith(b"*"):
                return theirs.endswith(mine[1:])
            return mine == theirs
        if self.id_type == IdType.ID_DER_ASN1_DN:
            return self.data == peer.data or _dn_matches(self.data, peer.data)
        return self.data == peer.data

    def __str__(self) -> str:
        return self.text or _describe(self)


IDENTITY_ANY = Identity(None, b"", "%any")
"""The wildcard identity ``%any``."""

_ANY_STRINGS = frozenset({"", "%any", "%any6", "*", "0.0.0.0", "::", "0::0"})

_PREFIXES: tuple[tuple[str, IdType], ...] = (
    ("ipv4:", IdType.ID_IPV4_ADDR),
    ("ipv6:", IdType.ID_IPV6_ADDR),
    ("rfc822:", IdType.ID_RFC822_ADDR),
    ("email:", IdType.ID_RFC822_ADDR),
    ("userfqdn:", IdType.ID_RFC822_ADDR),
    ("fqdn:", IdType.ID_FQDN),
    ("dns:", IdType.ID_FQDN),
    ("asn1dn:", IdType.ID_DER_ASN1_DN),
    ("keyid:", IdType.ID_KEY_ID),
)

_P, _IA5 = _ASN1Type.PrintableString, _ASN1Type.IA5String

DN_ATTRIBUTES: dict[str, tuple[ObjectIdentifier, _ASN1Type]] = {
    "c": (NameOID.COUNTRY_NAME, _P),
    "countryname": (NameOID.COUNTRY_NAME, _P),
    "st": (NameOID.STATE_OR_PROVINCE_NAME, _P),
    "stateorprovincename": (NameOID.STATE_OR_PROVINCE_NAME, _P),
    "l": (NameOID.LOCALITY_NAME, _P),
    "localityname": (NameOID.LOCALITY_NAME, _P),
    "o": (NameOID.ORGANIZATION_NAME, _P),
    "organizationname": (NameOID.ORGANIZATION_NAME, _P),
    "ou": (NameOID.ORGANIZATIONAL_UNIT_NAME, _P),
    "organizationalunitname": (NameOID.ORGANIZATIONAL_UNIT_NAME, _P),
    "cn": (NameOID.COMMON_NAME, _P),
    "commonname": (NameOID.COMMON_NAME, _P),
    "s": (NameOID.SURNAME, _P),
    "surname": (NameOID.SURNAME, _P),
    "g": (NameOID.GIVEN_NAME, _P),
    "givenname": (NameOID.GIVEN_NAME, _P),
    "i": (NameOID.INITIALS, _P),
    "initials": (NameOID.INITIALS, _P),
    "t": (NameOID.TITLE, _P),
    "title": (NameOID.TITLE, _P),
    "sn": (NameOID.SERIAL_NUMBER, _P),
    "serialnumber": (NameOID.SERIAL_NUMBER, _P),
    "d": (ObjectIdentifier("2.5.4.13"), _P),
    "description": (ObjectIdentifier("2.5.4.13"), _P),
    "n": (ObjectIdentifier("2.5.4.41"), _P),
    "name": (ObjectIdentifier("2.5.4.41"), _P),
    "dnqualifier": (NameOID.DN_QUALIFIER, _P),
    "pseudonym": (NameOID.PSEUDONYM, _P),
    "street": (NameOID.STREET_ADDRESS, _P),
    "postalcode": (NameOID.POSTAL_CODE, _P),
    "dc": (NameOID.DOMAIN_COMPONENT, _P),
    "domaincomponent": (NameOID.DOMAIN_COMPONENT, _P),
    "uid": (NameOID.USER_ID, _P),
    "en": (ObjectIdentifier("2.16.840.1.113730.3.1.3"), _P),
    "employeenumber": (ObjectIdentifier("2.16.840.1.113730.3.1.3"), _P),
    "e": (NameOID.EMAIL_ADDRESS, _IA5),
    "email": (NameOID.EMAIL_ADDRESS, _IA5),
    "emailaddress": (NameOID.EMAIL_ADDRESS, _IA5),
    "un": (NameOID.UNSTRUCTURED_NAME, _IA5),
    "unstructuredname": (NameOID.UNSTRUCTURED_NAME, _IA5),
    "ua": (ObjectIdentifier("1.2.840.113549.1.9.8"), _P),
    "unstructuredaddress": (ObjectIdentifier("1.2.840.113549.1.9.8"), _P),
}
"""Distinguished Name attribute keywords (lower case) → (OID, string type): strongSwan's set
plus the long OpenSSL names. A dotted OID (``2.5.4.3=moon``) is accepted too."""

_PRINTABLE = re.compile(r"[A-Za-z0-9 '()+,\-./:=?]*")
_DOTTED_OID = re.compile(r"[0-2](\.\d+)+")
_NUM_PREFIX = re.compile(r"\{(\d+)\}:")


def parse_identity(text: str) -> Identity:
    """Parse an identity in strongSwan's syntax; :class:`ConfigError` says what is wrong."""
    lowered = text.lower()
    for prefix, id_type in _PREFIXES:
        if lowered.startswith(prefix):
            return _typed(id_type, text[len(prefix) :], text)
    numeric = _NUM_PREFIX.match(text)
    if numeric:
        value = int(numeric.group(1))
        if not 0 < value < 256:
            raise ConfigError(f"ID type {value} in identity {text!r} is out of range (1-255)")
        return _typed(IdType(value), text[numeric.end() :], text)
    if "=" in text:
        return Identity(IdType.ID_DER_ASN1_DN, _dn_der(text), text)
    if text.strip() in _ANY_STRINGS:
        return Identity(None, b"", text)
    if text.startswith("@#"):
        return Identity(IdType.ID_KEY_ID, _hex(text[2:], text), text)
    if text.startswith("@@"):
        return _nonempty(IdType.ID_RFC822_ADDR, text[2:], text)
    if text.startswith("@"):
        return _nonempty(IdType.ID_FQDN, text[1:], text)
    if "@" in text:
        return Identity(IdType.ID_RFC822_ADDR, text.encode(), text)
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        if re.fullmatch(r"[\d.]+", text):
            raise ConfigError(f"identity {text!r} is not a valid IPv4 address") from None
        if ":" in text:
            # strongSwan reads a non-address with a colon as a KEY_ID; name it.
            return Identity(IdType.ID_KEY_ID, text.encode(), text)
        return Identity(IdType.ID_FQDN, text.encode(), text)
    id_type = IdType.ID_IPV4_ADDR if addr.version == 4 else IdType.ID_IPV6_ADDR
    return Identity(id_type, addr.packed, text)


def _typed(id_type: IdType, rest: str, text: str) -> Identity:
    if rest.startswith("#"):
        return Identity(id_type, _hex(rest[1:], text), text)
    if id_type in (IdType.ID_IPV4_ADDR, IdType.ID_IPV6_ADDR):
        try:
            addr = ipaddress.ip_address(rest)
        except ValueError:
            addr = None
        if addr is None or (addr.version == 4) != (id_type == IdType.ID_IPV4_ADDR):
            family = "IPv4" if id_type == IdType.ID_IPV4_ADDR else "IPv6"
            raise ConfigError(f"identity {text!r} is not a valid {family} address")
        return Identity(id_type, addr.packed, text)
    if id_type == IdType.ID_DER_ASN1_DN:
        return Identity(id_type, _dn_der(rest), text)
    return _nonempty(id_type, rest, text)


def _nonempty(id_type: IdType, rest: str, text: str) -> Identity:
    if not rest:
        raise ConfigError(f"identity {text!r} is empty after its prefix")
    return Identity(id_type, rest.encode(), text)


def _hex(digits: str, text: str) -> bytes:
    try:
        data = binascii.unhexlify(digits)
    except (binascii.Error, ValueError):
        raise ConfigError(f"identity {text!r}: {digits!r} is not an even number of hex digits") from None
    if not data:
        raise ConfigError(f"identity {text!r} has no hex digits")
    return data


def _dn_der(text: str) -> bytes:
    """``C=CH, O=strongSwan, CN=moon`` → DER Name, RDNs in the order written."""
    sep = ","
    body = text.strip()
    if body.startswith("/"):
        sep, body = "/", body[1:]
    attributes: list[x509.NameAttribute[str]] = []
    for part in body.split(sep):
        if not part.strip():
            continue
        key, eq, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not key:
            raise ConfigError(f"distinguished name {text!r}: {part.strip()!r} is not ATTRIBUTE=value")
        if _DOTTED_OID.fullmatch(key):
            oid, str_type = ObjectIdentifier(key), _P
        elif key.lower() in DN_ATTRIBUTES:
            oid, str_type = DN_ATTRIBUTES[key.lower()]
        else:
            raise ConfigError(
                f"distinguished name {text!r}: unknown attribute {key!r} "
                "(known: C, ST, L, O, OU, CN, E, DC, UID, SN, S, G, I, T, ...; "
                "write keyid:... for a key ID containing '=')"
            )
        if not value:
            raise ConfigError(f"distinguished name {text!r}: attribute {key!r} has no value")
        if str_type == _P and not _PRINTABLE.fullmatch(value):
            str_type = _ASN1Type.UTF8String
        try:
            attributes.append(x509.NameAttribute(oid, value, _type=str_type))
        except ValueError as exc:
            raise ConfigError(f"distinguished name {text!r}: {key}={value!r}: {exc}") from None
    if not attributes:
        raise ConfigError(f"distinguished name {text!r} has no attributes")
    return x509.Name(attributes).public_bytes()


# A minimal DER reader for Name (RFC 5280 §4.1.2.4): SEQUENCE OF SET OF SEQUENCE {OID, value}.
_SEQUENCE, _SET, _OID = 0x30, 0x31, 0x06
_CASELESS_TAGS = frozenset({0x13, 0x16})  # PrintableString, IA5String


def _tlv(der: bytes, pos: int) -> tuple[int, bytes, int]:
    if pos + 2 > len(der):
        raise ValueError("truncated DER")
    tag, length = der[pos], der[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or pos + count > len(der):
            raise ValueError("bad DER length")
        length = int.from_bytes(der[pos : pos + count], "big")
        pos += count
    if pos + length > len(der):
        raise ValueError("truncated DER")
    return tag, der[pos : pos + length], pos + length


def _dn_rdns(der: bytes) -> list[tuple[bytes, int, bytes]]:
    """The (OID, string tag, value) of each attribute of a DER Name, in order."""
    tag, body, end = _tlv(der, 0)
    if tag != _SEQUENCE or end != len(der):
        raise ValueError("not a DER Name")
    out: list[tuple[bytes, int, bytes]] = []
    pos = 0
    while pos < len(body):
        tag, rdn, pos = _tlv(body, pos)
        if tag != _SET:
            raise ValueError("RDN is not a SET")
        inner = 0
        while inner < len(rdn):
            tag, atv, inner = _tlv(rdn, inner)
            oid_tag, oid, after = _tlv(atv, 0) if tag == _SEQUENCE else (0, b"", 0)
            if oid_tag != _OID:
                raise ValueError("bad AttributeTypeAndValue")
            value_tag, value, _ = _tlv(atv, after)
            out.append((oid, value_tag, value))
    return out


def _dn_matches(pattern: bytes, peer: bytes) -> bool:
    try:
        mine, theirs = _dn_rdns(pattern), _dn_rdns(peer)
    except ValueError:
        return False
    if len(mine) != len(theirs):
        return False
    for (oid_a, tag_a, val_a), (oid_b, tag_b, val_b) in zip(mine, theirs, strict=True):
        if oid_a != oid_b:
            return False
        if val_a == b"*":
            continue
        if tag_a in _CASELESS_TAGS and tag_b in _CASELESS_TAGS:
            if val_a.lower() != val_b.lower():
                return False
        elif val_a != val_b:
            return False
    return True


_DN_LABELS = {
    "dnqualifier": "dnQualifier",
    "pseudonym": "pseudonym",
    "street": "street",
    "postalcode": "postalCode",
}


def _dn_label(oid: str) -> str:
    for key, (known, _) in DN_ATTRIBUTES.items():  # the first keyword of an OID is its short name
        if known.dotted_string == oid:
            return _DN_LABELS.get(key, key.upper())
    return oid


def _describe(identity: Identity) -> str:
    if identity.id_type is None:
        return "%any"
    if identity.id_type in (IdType.ID_IPV4_ADDR, IdType.ID_IPV6_ADDR):
        try:
            return str(ipaddress.ip_address(identity.data))
        except ValueError:
            pass
    if identity.id_type == IdType.ID_DER_ASN1_DN:
        try:
            rdns = _dn_rdns(identity.data)
        except ValueError:
            pass
        else:
            return ", ".join(
                f"{_dn_label(_oid_text(oid))}={value.decode(errors='replace')}" for oid, _, value in rdns
            )
    if identity.id_type in (IdType.ID_FQDN, IdType.ID_RFC822_ADDR):
        return identity.data.decode(errors="replace")
    return "@#" + identity.data.hex()


def _oid_text(encoded: bytes) -> str:
    if not encoded:
        return ""
    arcs = [*divmod(encoded[0], 40)] if encoded[0] < 80 else [2, encoded[0] - 80]
    value = 0
    for byte in encoded[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    return ".".join(str(a) for a in arcs)
