"""Gateway and client names: what becomes a SAN, and the clear refusals of bad names."""

from __future__ import annotations

import ipaddress

import pytest
from cryptography import x509

from pyipsec.pki.errors import PkiError
from pyipsec.pki.names import file_stem, is_dns_name, parse_client_name, parse_gateway_name


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("vpn.example.org", "vpn.example.org"),
        ("VPN.Example.ORG", "vpn.example.org"),
        ("gw", "gw"),
        ("1gw.example.org", "1gw.example.org"),
        (" xn--bcher-kva.example ", "xn--bcher-kva.example"),
    ],
)
def test_gateway_dns_names(text: str, canonical: str) -> None:
    name = parse_gateway_name(text)
    assert name.text == canonical and name.address is None
    assert name.general_names() == [x509.DNSName(canonical)]


@pytest.mark.parametrize(
    ("text", "canonical"), [("203.0.113.5", "203.0.113.5"), ("2001:DB8:0::5", "2001:db8::5")]
)
def test_gateway_addresses_become_dns_and_ip_names(text: str, canonical: str) -> None:
    name = parse_gateway_name(text)
    assert name.text == canonical
    assert name.address == ipaddress.ip_address(canonical)
    assert name.general_names() == [x509.DNSName(canonical), x509.IPAddress(ipaddress.ip_address(canonical))]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty gateway name"),
        ("vpn..example.org", "not a DNS name"),
        ("-vpn.example.org", "not a DNS name"),
        ("vpn_1.example.org", "not a DNS name"),
        ("vpn.example.org.", "not a DNS name"),
        ("a" * 64 + ".example.org", "not a DNS name"),
        ("203.0.113.300", "not a DNS name"),
        ("*.example.org", "wildcards"),
        ("bücher.example", "not ASCII"),
        ("vpn example.org", "not a DNS name"),
    ],
)
def test_bad_gateway_names(text: str, reason: str) -> None:
    with pytest.raises(PkiError, match=reason):
        parse_gateway_name(text)


def test_dns_name_length_limit() -> None:
    label = "a" * 63
    assert is_dns_name(".".join([label] * 3) + ".example")  # 199 characters
    assert not is_dns_name(".".join([label] * 4) + ".b")  # 255 characters
    assert not is_dns_name("10.1.2")


def test_client_names() -> None:
    email = parse_client_name("Alice.Smith+vpn@Example.ORG")
    assert (email.text, email.kind) == ("Alice.Smith+vpn@example.org", "email")
    assert email.general_name() == x509.RFC822Name("Alice.Smith+vpn@example.org")
    host = parse_client_name("Laptop.example.org")
    assert (host.text, host.kind) == ("laptop.example.org", "dns")
    assert host.general_name() == x509.DNSName("laptop.example.org")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty client name"),
        ("alice smith@example.org", "local part"),
        (".alice@example.org", "local part"),
        ("alice@example..org", "not a DNS name"),
        ("alice@", "not a DNS name"),
        ("203.0.113.9", "not an IP address"),
        ("alice!", "neither an e-mail address nor a DNS name"),
        ("älice@example.org", "not ASCII"),
    ],
)
def test_bad_client_names(text: str, reason: str) -> None:
    with pytest.raises(PkiError, match=reason):
        parse_client_name(text)


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("vpn.example.org", "vpn.example.org"),
        ("2001:db8::5", "2001_db8__5"),
        ("alice@x.org", "alice@x.org"),
        ("../etc/passwd", "_etc_passwd"),
        ("..", "_"),
    ],
)
def test_file_stem_is_a_plain_file_name(name: str, stem: str) -> None:
    assert file_stem(name) == stem
    assert "/" not in file_stem(name) and not file_stem(name).startswith(".")
