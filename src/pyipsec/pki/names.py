"""Names that go into certificates: gateway names and client names.

Theory of operation: a gateway is reached by a DNS name or an IP address, and the built-in
clients check that name against the gateway certificate's subjectAltName (RFC 5280 §4.2.1.6,
RFC 4945 §5.1.3.6) — each in its own way. macOS and iOS match FQDN identities against dNSName
entries (since iOS 13 and macOS 10.15 a SAN is required, the CN no longer counts); Windows
matches the *server address the user typed* against dNSName entries even when that address is
an IP literal. So :meth:`GatewayName.general_names` puts every name in a dNSName, and an IP
address additionally in an iPAddress entry, which is what RFC 4945 §5.1.3.6 asks for an
ID_IPV4_ADDR/ID_IPV6_ADDR identity.

A client is named by an e-mail address (an rfc822Name SAN, matching an ID_RFC822_ADDR
identity) or a DNS name (a dNSName SAN, matching ID_FQDN). Names are validated here so that
every command fails with one clear sentence instead of producing a certificate no client
accepts: DNS names follow RFC 1035 §2.3.1 with the RFC 1123 §2.1 relaxation (labels may start
with a digit), ASCII only (IDNs must be given in their xn-- form).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal

from cryptography import x509

from pyipsec.pki.errors import PkiError

__all__ = [
    "ClientName",
    "GatewayName",
    "IPAddress",
    "file_stem",
    "is_dns_name",
    "parse_client_name",
    "parse_gateway_name",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}")
_MAX_DNS_NAME = 253


def is_dns_name(text: str) -> bool:
    """Whether ``text`` is a fully written ASCII host name (RFC 1035 §2.3.1, RFC 1123 §2.1).

    No trailing dot, no wildcard, at most 253 characters, labels of 1-63 letters, digits and
    inner hyphens. A string of digits and dots is not a host name (it is a bad IPv4 address).
    """
    if not text or len(text) > _MAX_DNS_NAME or not text.isascii():
        return False
    labels = text.split(".")
    if all(label.isdigit() for label in labels):
        return False
    return all(_LABEL.fullmatch(label) for label in labels)


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class GatewayName:
    """A name clients use to reach the gateway: a DNS name, or an IP address (``address``)."""

    text: str
    address: IPAddress | None = None

    def general_names(self) -> list[x509.GeneralName]:
        """The SAN entries for this name: a dNSName always, plus an iPAddress for an address."""
        names: list[x509.GeneralName] = [x509.DNSName(self.text)]
        if self.address is not None:
            names.append(x509.IPAddress(self.address))
        return names


def parse_gateway_name(text: str) -> GatewayName:
    """A gateway name from the command line; raises :class:`PkiError` naming the problem.

    IP addresses are written in their canonical form (``2001:db8::1``), DNS names in lower case.
    """
    value = text.strip()
    address = _ip(value)
    if address is not None:
        return GatewayName(str(address), address)
    if not value:
        raise PkiError("empty gateway name: give a DNS name or an IP address")
    if not value.isascii():
        raise PkiError(f"bad gateway name {text!r}: not ASCII (write an internationalised name as xn--...)")
    if value.startswith("*"):
        raise PkiError(f"bad gateway name {text!r}: wildcards are not accepted by IKE clients")
    if not is_dns_name(value):
        raise PkiError(
            f"bad gateway name {text!r}: not a DNS name (letters, digits and hyphens in dot-separated "
            "labels of at most 63 characters) or an IP address"
        )
    return GatewayName(value.lower())


@dataclass(frozen=True, slots=True)
class ClientName:
    """A client certificate's name: an e-mail address or a DNS name (``kind``)."""

    text: str
    kind: Literal["email", "dns"]

    def general_name(self) -> x509.GeneralName:
        """The SAN entry: rfc822Name for an e-mail address, dNSName for a DNS name."""
        return x509.RFC822Name(self.text) if self.kind == "email" else x509.DNSName(self.text)


def parse_client_name(text: str) -> ClientName:
    """A client name: ``user@example.org`` (rfc822Name) or ``laptop.example.org`` (dNSName)."""
    value = text.strip()
    if not value:
        raise PkiError("empty client name: give an e-mail address or a DNS name")
    if not value.isascii():
        raise PkiError(f"bad client name {text!r}: not ASCII")
    if "@" in value:
        local, _, domain = value.rpartition("@")
        if not _LOCAL_PART.fullmatch(local) or local.startswith(".") or local.endswith(".") or ".." in local:
            raise PkiError(f"bad client name {text!r}: {local!r} is not a valid e-mail local part")
        if not is_dns_name(domain):
            raise PkiError(f"bad client name {text!r}: {domain!r} is not a DNS name")
        return ClientName(f"{local}@{domain.lower()}", "email")
    if _ip(value) is not None:
        raise PkiError(f"bad client name {text!r}: use an e-mail address or a DNS name, not an IP address")
    if not is_dns_name(value):
        raise PkiError(f"bad client name {text!r}: neither an e-mail address nor a DNS name")
    return ClientName(value.lower(), "dns")


_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]")


def file_stem(name: str) -> str:
    """A file-name stem for ``name``: characters other than ``A-Za-z0-9._@+-`` become ``_``."""
    stem = _UNSAFE.sub("_", name).lstrip(".")
    return stem or "_"
