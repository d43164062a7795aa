from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import Any

import pytest

from pyipsec.errors import DecodeError
from pyipsec.iana.ikev2 import PayloadType, TsType
from pyipsec.wire.buffer import Reader
from pyipsec.wire.payloads.base import decoder_for
from pyipsec.wire.payloads.ts import RawTrafficSelector, TrafficSelector, TrafficSelectors
from tests.unit.wire.payload_vectors_b import body, capture_messages, cases, inner_payloads


def decode(data: bytes, ptype: PayloadType = PayloadType.TSi) -> TrafficSelectors:
    return TrafficSelectors.decode_body(ptype, Reader(data, base=200))


def _selector(f: dict[str, Any]) -> TrafficSelector | RawTrafficSelector:
    if "data" in f:
        return RawTrafficSelector(TsType(f["ts_type"]), bytes.fromhex(f["data"]), f["reserved"])
    return TrafficSelector(
        TsType(f["ts_type"]),
        f["ip_protocol"],
        f["start_port"],
        f["end_port"],
        ip_address(f["start_addr"]),
        ip_address(f["end_addr"]),
    )


@pytest.mark.parametrize("case", cases("TSi", "TSr"), ids=lambda c: c["id"])
def test_vector_decodes_and_encodes(case: dict[str, Any]) -> None:
    ptype = PayloadType[case["payload"]]
    expected = TrafficSelectors(ptype, tuple(_selector(s) for s in case["fields"]["selectors"]))
    assert decode(body(case), ptype) == expected
    assert expected.encode_body() == body(case)


def test_registered_for_tsi_and_tsr() -> None:
    raw = bytes.fromhex("00000000")
    for ptype in (PayloadType.TSi, PayloadType.TSr):
        decoder = decoder_for(ptype)
        assert decoder is not None
        payload = decoder(ptype, Reader(raw))
        assert payload == TrafficSelectors(ptype, ())
        assert payload.payload_type == ptype


def test_payload_type_must_be_ts() -> None:
    with pytest.raises(ValueError):
        TrafficSelectors(PayloadType.SA, ())


def test_reserved_octets_are_ignored_on_receipt() -> None:
    ts = decode(bytes.fromhex("01ffffff 07000010 0000ffff 0a000000 0a0000ff"))
    assert ts.selectors == (TrafficSelector.from_network("10.0.0.0/24"),)
    assert ts.encode_body()[1:4] == b"\x00\x00\x00"


# ------------------------------------------------------------ decode errors


@pytest.mark.parametrize(
    "data",
    [
        pytest.param("", id="no header"),
        pytest.param("01", id="reserved truncated"),
        pytest.param("01000000", id="count 1, no selector"),
        pytest.param("02000000 07000010 0000ffff 0a000000 0a0000ff", id="count 2, one selector"),
        pytest.param("00000000 07000010 0000ffff 0a000000 0a0000ff", id="count 0, one selector trailing"),
        pytest.param("01000000 07000028 0000ffff" + "00" * 32, id="IPv4 type with IPv6 length"),
        pytest.param("01000000 08000010 0000ffff 0a000000 0a0000ff", id="IPv6 type with IPv4 length"),
        pytest.param("01000000 07000011 0000ffff 0a000000 0a0000ff 00", id="IPv4 length 17"),
        pytest.param("01000000 07000010 0000ffff 0a000000 0a00", id="selector truncated"),
        pytest.param("01000000 0a000003", id="raw selector length below header"),
        pytest.param("01000000 0a000009 41424344", id="raw selector past body"),
        pytest.param("01000000 0700", id="selector header truncated"),
    ],
)
def test_malformed_payload_raises(data: str) -> None:
    with pytest.raises(DecodeError):
        decode(bytes.fromhex(data.replace(" ", "")))


def test_decode_error_offset_points_at_selector() -> None:
    with pytest.raises(DecodeError) as exc:
        decode(bytes.fromhex("01000000 07000011 0000ffff 0a000000 0a0000ff 00".replace(" ", "")))
    assert exc.value.offset == 208  # after the selector header, base 200


def test_ranges_are_not_ordered_by_the_codec() -> None:
    # RFC 7296 §3.13.1 uses start port > end port (OPAQUE); start address > end address
    # is not forbidden either. Both decode and round-trip unchanged.
    raw = bytes.fromhex("01000000 07060010 ffff0000 0a0000ff 0a000000".replace(" ", ""))
    ts = decode(raw).selectors[0]
    assert isinstance(ts, TrafficSelector)
    assert (ts.start_port, ts.end_port) == (65535, 0) and ts.opaque_ports
    assert int(ts.start_addr) > int(ts.end_addr) and ts.networks() == ()
    assert decode(raw).encode_body() == raw


def test_unknown_ts_type_is_kept_raw() -> None:
    raw = bytes.fromhex("01000000 fe070006 abcd".replace(" ", ""))
    sel = decode(raw).selectors[0]
    assert sel == RawTrafficSelector(TsType(0xFE), b"\xab\xcd", 7)
    assert not sel.ts_type.is_assigned
    assert decode(raw).encode_body() == raw


# ------------------------------------------------------------ construction


def test_family_must_match_type() -> None:
    v4, v6 = IPv4Address("10.0.0.1"), IPv6Address("::1")
    with pytest.raises(ValueError):
        TrafficSelector(TsType.TS_IPV4_ADDR_RANGE, 0, 0, 65535, v6, v6)
    with pytest.raises(ValueError):
        TrafficSelector(TsType.TS_IPV6_ADDR_RANGE, 0, 0, 65535, v4, v4)
    with pytest.raises(ValueError):
        TrafficSelector(TsType.TS_IPV4_ADDR_RANGE, 0, 0, 65535, v4, v6)
    with pytest.raises(ValueError):
        TrafficSelector(TsType.TS_SECLABEL, 0, 0, 65535, v4, v4)


@pytest.mark.parametrize(("proto", "ports"), [(256, (0, 0)), (-1, (0, 0)), (6, (0, 65536)), (6, (-1, 0))])
def test_protocol_and_port_ranges(proto: int, ports: tuple[int, int]) -> None:
    with pytest.raises(ValueError):
        TrafficSelector.from_network("10.0.0.0/8", protocol=proto, ports=ports)


def test_raw_selector_refuses_range_types() -> None:
    with pytest.raises(ValueError):
        RawTrafficSelector(TsType.TS_IPV4_ADDR_RANGE, bytes(12))


def test_too_many_selectors() -> None:
    one = TrafficSelector.from_network("10.0.0.0/8")
    TrafficSelectors(PayloadType.TSi, (one,) * 255)
    with pytest.raises(ValueError):
        TrafficSelectors(PayloadType.TSi, (one,) * 256)


def test_from_network_and_range() -> None:
    ts = TrafficSelector.from_network("10.1.2.3/16", protocol=17, ports=(53, 53))
    assert ts == TrafficSelector(
        TsType.TS_IPV4_ADDR_RANGE, 17, 53, 53, IPv4Address("10.1.0.0"), IPv4Address("10.1.255.255")
    )
    assert ts.version == 4 and ts.networks() == (IPv4Network("10.1.0.0/16"),)
    v6 = TrafficSelector.from_network(IPv6Network("2001:db8::/48"))
    assert v6.ts_type == TsType.TS_IPV6_ADDR_RANGE and v6.any_port
    host = TrafficSelector.from_network("192.0.2.9")
    assert host.start_addr == host.end_addr == IPv4Address("192.0.2.9")
    r = TrafficSelector.from_range("10.0.0.1", "10.0.0.9")
    assert r.networks()[0] == IPv4Network("10.0.0.1/32") and len(r.networks()) == 4


@pytest.mark.parametrize(
    ("ts", "text"),
    [
        (TrafficSelector.from_network("10.0.0.0/24"), "10.0.0.0/24"),
        (TrafficSelector.from_range("10.0.0.1", "10.0.0.9"), "10.0.0.1..10.0.0.9"),
        (TrafficSelector.from_network("10.0.0.0/8", protocol=6, ports=(80, 80)), "10.0.0.0/8[tcp/80]"),
        (TrafficSelector.from_network("0.0.0.0/0", protocol=17), "0.0.0.0/0[udp]"),
        (
            TrafficSelector.from_network("10.0.0.1", protocol=6, ports=(1024, 2047)),
            "10.0.0.1/32[tcp/1024-2047]",
        ),
        (TrafficSelector.from_network("10.0.0.1", protocol=17, ports=(65535, 0)), "10.0.0.1/32[udp/OPAQUE]"),
        (TrafficSelector.from_network("10.0.0.0/8", ports=(443, 443)), "10.0.0.0/8[443]"),
        (TrafficSelector.from_network("2001:db8::/32", protocol=99), "2001:db8::/32[99]"),
        (TrafficSelector.from_network("::/0", protocol=58, ports=(0x8000, 0x8000)), "::/0[ipv6-icmp/128]"),
        (
            TrafficSelector.from_network("0.0.0.0/0", protocol=1, ports=(0x0301, 0x0301)),
            "0.0.0.0/0[icmp/3(1)]",
        ),
        (
            TrafficSelector.from_network("0.0.0.0/0", protocol=1, ports=(0x0800, 0x08FF)),
            "0.0.0.0/0[icmp/8-8(255)]",
        ),
    ],
)
def test_str_like_strongswan(ts: TrafficSelector, text: str) -> None:
    assert str(ts) == text


def test_payload_str() -> None:
    p = TrafficSelectors(PayloadType.TSr, (TrafficSelector.from_network("10.0.0.0/24"),))
    assert str(p) == "TSr(10.0.0.0/24)"


# ------------------------------------------------------------ strongSwan captures


def test_strongswan_ts_payloads() -> None:
    found = 0
    for _stem, msg in capture_messages():
        if msg["exchange"] != "IKE_AUTH":
            continue
        for p in inner_payloads(msg):
            if p.ptype not in (PayloadType.TSi, PayloadType.TSr):
                continue
            ts = decode(p.body, PayloadType(p.ptype))
            expected = "10.231.101.0/24" if p.ptype == PayloadType.TSi else "10.231.100.0/24"
            assert [str(s) for s in ts.selectors] == [expected]
            assert ts.encode_body() == p.body
            found += 1
    assert found == 20  # 5 captures x 2 IKE_AUTH messages x (TSi, TSr)
