from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Interface, IPv6Network
from typing import Any

import pytest

from pyipsec.errors import DecodeError
from pyipsec.iana.ikev2 import CfgAttr, CfgType, PayloadType
from pyipsec.wire.buffer import Reader
from pyipsec.wire.payloads.base import decoder_for
from pyipsec.wire.payloads.cp import ConfigAttribute, Configuration, attribute_length_problem
from tests.unit.wire.payload_vectors_b import body, cases


def decode(data: bytes) -> Configuration:
    return Configuration.decode_body(PayloadType.CP, Reader(data, base=300))


@pytest.mark.parametrize("case", cases("CP"), ids=lambda c: c["id"])
def test_vector_decodes_and_encodes(case: dict[str, Any]) -> None:
    f = case["fields"]
    attrs = tuple(ConfigAttribute(CfgAttr(t), bytes.fromhex(v)) for t, v in f["attributes"])
    expected = Configuration(CfgType(f["cfg_type"]), attrs)
    assert decode(body(case)) == expected
    assert expected.encode_body() == body(case)


def test_vector_typed_values() -> None:
    (reply,) = [c for c in cases("CP") if c["id"] == "cp-reply-ipv4"]
    cp = decode(body(reply))
    assert cp.cfg_type == CfgType.CFG_REPLY and cp.payload_type == PayloadType.CP
    addr = cp.first(CfgAttr.INTERNAL_IP4_ADDRESS)
    assert addr is not None and addr.ip4_value() == IPv4Address("10.1.0.5")
    mask = cp.first(CfgAttr.INTERNAL_IP4_NETMASK)
    assert mask is not None and mask.ip4_value() == IPv4Address("255.255.255.0")
    assert [a.ip4_value() for a in cp.all(CfgAttr.INTERNAL_IP4_DNS)] == [IPv4Address("10.1.0.1")]
    subnet = cp.first(CfgAttr.INTERNAL_IP4_SUBNET)
    assert subnet is not None and subnet.ip4_network() == IPv4Network("10.0.0.0/16")
    assert cp.first(CfgAttr.INTERNAL_IP6_ADDRESS) is None

    (v6,) = [c for c in cases("CP") if c["id"] == "cp-reply-ipv6-and-domain"]
    cp6 = decode(body(v6))
    a6 = cp6.first(CfgAttr.INTERNAL_IP6_ADDRESS)
    assert a6 is not None and a6.ip6_interface() == IPv6Interface("2001:db8::5/64")
    dom = cp6.first(CfgAttr.INTERNAL_DNS_DOMAIN)
    assert dom is not None and dom.text() == "example.com"


def test_registered() -> None:
    decoder = decoder_for(PayloadType.CP)
    assert decoder is not None
    assert decoder(PayloadType.CP, Reader(bytes.fromhex("01000000"))) == Configuration(CfgType.CFG_REQUEST)


def test_r_bit_and_reserved_ignored_on_receipt() -> None:
    # RFC 7296 §3.15/§3.15.1: RESERVED and the R bit MUST be ignored on receipt; sent as zero.
    cp = decode(bytes.fromhex("03ffffff 80010004 0a000001 8003 0000".replace(" ", "")))
    assert cp == Configuration(
        CfgType.CFG_SET,
        (
            ConfigAttribute.ip4(CfgAttr.INTERNAL_IP4_ADDRESS, "10.0.0.1"),
            ConfigAttribute(CfgAttr.INTERNAL_IP4_DNS),
        ),
    )
    assert cp.encode_body() == bytes.fromhex("03000000 00010004 0a000001 0003 0000".replace(" ", ""))


def test_unknown_cfg_type_and_attribute_kept() -> None:
    raw = bytes.fromhex("09000000 7abc0003 010203".replace(" ", ""))
    cp = decode(raw)
    assert cp.cfg_type == 9 and not cp.cfg_type.is_assigned
    assert cp.attributes == (ConfigAttribute(CfgAttr(0x7ABC), b"\x01\x02\x03"),)
    assert cp.encode_body() == raw


# ------------------------------------------------------------ decode errors


@pytest.mark.parametrize(
    "data",
    [
        pytest.param("", id="empty"),
        pytest.param("010000", id="reserved truncated"),
        pytest.param("01000000 00", id="attribute header truncated"),
        pytest.param("01000000 000100", id="attribute length truncated"),
        pytest.param("01000000 00070005 6162", id="value past body"),
        pytest.param("01000000 00010002 0a00", id="IP4 address of 2"),
        pytest.param("01000000 00030005 0a00000100", id="IP4 DNS of 5"),
        pytest.param("01000000 000a0004 0a000001", id="IP6 DNS of 4"),
        pytest.param("01000000 00080010" + "00" * 16, id="IP6 address without prefix"),
        pytest.param("01000000 000d0004 0a000000", id="IP4 subnet of 4"),
        pytest.param("01000000 000f0010" + "00" * 16, id="IP6 subnet of 16"),
        pytest.param("01000000 000e0003 000100", id="supported attributes odd"),
    ],
)
def test_malformed_payload_raises(data: str) -> None:
    with pytest.raises(DecodeError):
        decode(bytes.fromhex(data.replace(" ", "")))


def test_decode_error_offset() -> None:
    with pytest.raises(DecodeError) as exc:
        decode(bytes.fromhex("01000000 00010002 0a00".replace(" ", "")))
    assert exc.value.offset == 308  # after the attribute header


def test_length_table() -> None:
    assert attribute_length_problem(CfgAttr.INTERNAL_IP4_DNS, 4) is None
    assert attribute_length_problem(CfgAttr.INTERNAL_IP4_DNS, 0) is None
    assert attribute_length_problem(CfgAttr.INTERNAL_IP4_DNS, 16) is not None
    assert attribute_length_problem(CfgAttr.INTERNAL_IP6_ADDRESS, 17) is None
    assert attribute_length_problem(CfgAttr.INTERNAL_IP6_SUBNET, 17) is None
    assert attribute_length_problem(CfgAttr.APPLICATION_VERSION, 1000) is None
    assert attribute_length_problem(CfgAttr(0x7000), 3) is None


# ------------------------------------------------------------ typed attributes


@pytest.mark.parametrize(
    "attr_type",
    [
        CfgAttr.INTERNAL_IP4_ADDRESS,
        CfgAttr.INTERNAL_IP4_NETMASK,
        CfgAttr.INTERNAL_IP4_DNS,
        CfgAttr.INTERNAL_IP4_NBNS,
        CfgAttr.INTERNAL_IP4_DHCP,
    ],
)
def test_ip4_attributes(attr_type: CfgAttr) -> None:
    a = ConfigAttribute.ip4(attr_type, "192.0.2.53")
    assert a.value == bytes.fromhex("c0000235") and a.ip4_value() == IPv4Address("192.0.2.53")
    assert ConfigAttribute.ip4(attr_type).value == b""
    assert ConfigAttribute.ip4(attr_type).ip4_value() is None


@pytest.mark.parametrize("attr_type", [CfgAttr.INTERNAL_IP6_DNS, CfgAttr.INTERNAL_IP6_DHCP])
def test_ip6_attributes(attr_type: CfgAttr) -> None:
    a = ConfigAttribute.ip6(attr_type, IPv6Address("2001:db8::53"))
    assert len(a.value) == 16 and a.ip6_value() == IPv6Address("2001:db8::53")
    assert ConfigAttribute.ip6(attr_type).ip6_value() is None


def test_ip6_address() -> None:
    a = ConfigAttribute.ip6_address("2001:db8::5/64")
    assert a.value == IPv6Address("2001:db8::5").packed + b"\x40"
    assert a.ip6_interface() == IPv6Interface("2001:db8::5/64")
    assert ConfigAttribute.ip6_address().ip6_interface() is None
    with pytest.raises(DecodeError):
        ConfigAttribute(CfgAttr.INTERNAL_IP6_ADDRESS, bytes(16) + b"\x81").ip6_interface()


def test_ip4_subnet() -> None:
    a = ConfigAttribute.ip4_subnet("10.20.0.0/14")
    assert a.value == bytes.fromhex("0a140000 fffc0000".replace(" ", ""))
    assert a.ip4_network() == IPv4Network("10.20.0.0/14")
    assert ConfigAttribute.ip4_subnet().ip4_network() is None
    host_bits = ConfigAttribute(CfgAttr.INTERNAL_IP4_SUBNET, bytes.fromhex("0a000001ffffff00"))
    assert host_bits.ip4_network() == IPv4Network("10.0.0.0/24")
    for mask in ("00000000", "ffffffff"):
        ok = ConfigAttribute(CfgAttr.INTERNAL_IP4_SUBNET, bytes.fromhex("00000000" + mask))
        assert ok.ip4_network() is not None
    with pytest.raises(DecodeError):
        ConfigAttribute(CfgAttr.INTERNAL_IP4_SUBNET, bytes.fromhex("0a000000ff00ff00")).ip4_network()


def test_ip6_subnet() -> None:
    a = ConfigAttribute.ip6_subnet("2001:db8:1::/48")
    assert len(a.value) == 17 and a.ip6_network() == IPv6Network("2001:db8:1::/48")
    # RFC 7296 lists 17 octets only; an empty one (a request) is accepted leniently.
    assert ConfigAttribute.ip6_subnet().ip6_network() is None
    with pytest.raises(DecodeError):
        ConfigAttribute(CfgAttr.INTERNAL_IP6_SUBNET, bytes(16) + b"\xff").ip6_network()


def test_text_attributes() -> None:
    v = ConfigAttribute.application_version("pyipsec 0.1")
    assert v.attr_type == CfgAttr.APPLICATION_VERSION and v.text() == "pyipsec 0.1"
    d = ConfigAttribute.dns_domain("corp.example")
    assert d.attr_type == CfgAttr.INTERNAL_DNS_DOMAIN and d.value == b"corp.example"
    assert ConfigAttribute.dns_domain().value == b""
    with pytest.raises(DecodeError):
        ConfigAttribute(CfgAttr.APPLICATION_VERSION, b"\xff").text()


def test_supported_attributes() -> None:
    types = (CfgAttr.INTERNAL_IP4_ADDRESS, CfgAttr.INTERNAL_IP4_DNS, CfgAttr.INTERNAL_DNS_DOMAIN)
    a = ConfigAttribute.supported_attributes(types)
    assert a.value == bytes.fromhex("000100030019")
    assert a.attribute_types() == types
    assert ConfigAttribute.supported_attributes([]).attribute_types() == ()


def test_constructor_checks() -> None:
    with pytest.raises(ValueError):
        ConfigAttribute(CfgAttr.INTERNAL_IP4_DNS, bytes(3))
    with pytest.raises(ValueError):
        ConfigAttribute(CfgAttr(0x8000))
    with pytest.raises(ValueError):
        ConfigAttribute.ip4(CfgAttr.INTERNAL_IP6_DNS, "10.0.0.1")
    with pytest.raises(ValueError):
        ConfigAttribute.ip6(CfgAttr.INTERNAL_IP4_DNS, "::1")
    with pytest.raises(ValueError):
        ConfigAttribute.application_version("non-ascii \u00e9")
    with pytest.raises(ValueError):
        Configuration(CfgType(256))


def test_accessor_on_wrong_type_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        ConfigAttribute.ip4(CfgAttr.INTERNAL_IP4_DNS, "10.0.0.1").ip6_value()
    with pytest.raises(ValueError):
        ConfigAttribute.application_version("x").attribute_types()
