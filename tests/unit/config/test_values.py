"""Config value parsers: traffic selectors, addresses, durations, secrets, pool ranges."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest

from pyipsec.config.values import (
    parse_address_spec,
    parse_duration,
    parse_secret,
    parse_ts,
    pool_range,
    split_list,
)

V4 = IPv4Address
V6 = IPv6Address


@pytest.mark.parametrize(
    ("text", "first", "last", "proto", "ports"),
    [
        ("10.1.0.0/16", V4("10.1.0.0"), V4("10.1.255.255"), 0, (0, 0xFFFF)),
        ("0.0.0.0/0", V4("0.0.0.0"), V4("255.255.255.255"), 0, (0, 0xFFFF)),
        ("192.0.2.7", V4("192.0.2.7"), V4("192.0.2.7"), 0, (0, 0xFFFF)),
        ("10.0.0.1-10.0.0.9", V4("10.0.0.1"), V4("10.0.0.9"), 0, (0, 0xFFFF)),
        ("2001:db8::/32", V6("2001:db8::"), V6("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"), 0, (0, 0xFFFF)),
        ("::/0", V6("::"), V6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), 0, (0, 0xFFFF)),
        ("10.0.0.0/8[tcp/443]", V4("10.0.0.0"), V4("10.255.255.255"), 6, (443, 443)),
        ("10.0.0.0/8[udp/1000-2000]", V4("10.0.0.0"), V4("10.255.255.255"), 17, (1000, 2000)),
        ("10.0.0.0/8[TCP]", V4("10.0.0.0"), V4("10.255.255.255"), 6, (0, 0xFFFF)),
        ("10.0.0.0/8[udp/%any]", V4("10.0.0.0"), V4("10.255.255.255"), 17, (0, 0xFFFF)),
        ("10.0.0.0/8[47]", V4("10.0.0.0"), V4("10.255.255.255"), 47, (0, 0xFFFF)),
        ("10.0.0.0/8[gre]", V4("10.0.0.0"), V4("10.255.255.255"), 47, (0, 0xFFFF)),
        # ICMP: type in the high octet, code in the low one (RFC 7296 §3.13.1)
        ("10.0.0.0/8[icmp/8]", V4("10.0.0.0"), V4("10.255.255.255"), 1, (0x0800, 0x08FF)),
        ("10.0.0.0/8[icmp/3/4]", V4("10.0.0.0"), V4("10.255.255.255"), 1, (0x0304, 0x0304)),
        (
            "2001:db8::/32[icmpv6/128]",
            V6("2001:db8::"),
            V6("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"),
            58,
            (0x8000, 0x80FF),
        ),
        ("dynamic", None, None, 0, (0, 0xFFFF)),
        ("dynamic[udp/1701]", None, None, 17, (1701, 1701)),
    ],
)
def test_parse_ts(text: str, first: object, last: object, proto: int, ports: tuple[int, int]) -> None:
    ts = parse_ts(text)
    assert (ts.first, ts.last, ts.protocol, (ts.port_start, ts.port_end)) == (first, last, proto, ports)
    assert ts.dynamic == (first is None)
    assert str(ts) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10.0.0.300/8", 'not a network or range: "10.0.0.300/8"'),
        ("10.1.0.1/16", '"10.1.0.1/16" has host bits set (did you mean "10.1.0.0/16"?)'),
        ("10.0.0.9-10.0.0.1", 'range runs backwards: "10.0.0.9-10.0.0.1"'),
        ("10.0.0.1-2001:db8::1", 'range mixes IPv4 and IPv6: "10.0.0.1-2001:db8::1"'),
        ("10.0.0.1-", 'not a network or range: "10.0.0.1-"'),
        ("moon", 'not a network or range: "moon"'),
        ("10.0.0.0/8[tcp/443", 'not a network or range: "10.0.0.0/8[tcp/443"'),
        ("10.0.0.0/8[xyz]", 'unknown protocol "xyz"'),
        ("10.0.0.0/8[300]", 'unknown protocol "300"'),
        ("10.0.0.0/8[gre/80]", "ports apply to tcp, udp, sctp and udplite only"),
        ("10.0.0.0/8[tcp/http]", 'port "http" is not a number or range'),
        ("10.0.0.0/8[tcp/70000]", 'bad port range "70000"'),
        ("10.0.0.0/8[tcp/9-1]", 'bad port range "9-1"'),
        ("10.0.0.0/8[icmp/300]", 'bad ICMP type/code "300"'),
        ("2001:db8::/32[icmp]", "icmp does not apply to IPv6 (use icmpv6)"),
        ("10.0.0.0/8[icmpv6]", "icmpv6 does not apply to IPv4 (use icmp)"),
    ],
)
def test_parse_ts_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_ts(text)
    assert message in str(info.value)


def test_address_specs() -> None:
    any_spec = parse_address_spec("%any", remote=False)
    assert any_spec.is_any and any_spec.address is None and any_spec.contains(ip_address("::1"))
    any4 = parse_address_spec("%any4", remote=True)
    assert any4.contains(ip_address("203.0.113.9")) and not any4.contains(ip_address("::1"))
    assert not any4.is_any and any4.address is None
    one = parse_address_spec("192.0.2.1", remote=False)
    assert one.address == ip_address("192.0.2.1") and not one.contains(ip_address("192.0.2.2"))
    host = parse_address_spec("vpn-gw.example.org.", remote=True)
    assert host.hostname == "vpn-gw.example.org" and host.address is None
    assert not host.contains(ip_address("192.0.2.1"))
    subnet = parse_address_spec("198.51.100.0/24", remote=True)
    assert subnet.contains(ip_address("198.51.100.77")) and not subnet.contains(ip_address("198.51.101.1"))
    rng = parse_address_spec("2001:db8::1-2001:db8::9", remote=True)
    assert rng.contains(ip_address("2001:db8::5")) and not rng.contains(ip_address("2001:db8::a"))


@pytest.mark.parametrize(
    ("text", "remote"),
    [
        ("gw.example.org", False),
        ("10.0.0.0/8", False),
        ("10.0.0.300", True),
        ("bad host!", True),
        ("-leading.example", True),
    ],
)
def test_address_spec_errors(text: str, remote: bool) -> None:
    with pytest.raises(ValueError) as info:
        parse_address_spec(text, remote=remote)
    assert f'"{text}"' in str(info.value)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(0, 0), (30, 30), ("30", 30), ("30s", 30), ("5m", 300), ("4h", 14400), ("1d", 86400), (" 2 h ", 7200)],
)
def test_parse_duration(value: object, seconds: int) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", [True, -1, "1w", "1.5h", "h", 1.5, None])
def test_parse_duration_errors(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


def test_parse_secret() -> None:
    assert parse_secret("0x00ff10") == b"\x00\xff\x10"
    assert parse_secret("0XAB") == b"\xab"
    assert parse_secret("0sAAEC") == b"\x00\x01\x02"
    assert parse_secret("pässword") == "pässword".encode()
    assert parse_secret(b"\x00raw") == b"\x00raw"
    for bad, kind in (("0xabc", "hex"), ("0x0g", "hex"), ("0s!!", "base64")):
        with pytest.raises(ValueError, match=kind):
            parse_secret(bad)
    with pytest.raises(ValueError, match="empty"):
        parse_secret("")
    with pytest.raises(ValueError, match="expected a string"):
        parse_secret(42)


def test_pool_range() -> None:
    assert pool_range("10.3.0.0/24") == (V4("10.3.0.1"), V4("10.3.0.254"))  # no network/broadcast
    assert pool_range("10.3.0.0/31") == (V4("10.3.0.0"), V4("10.3.0.1"))
    assert pool_range("10.3.0.10-10.3.0.200") == (V4("10.3.0.10"), V4("10.3.0.200"))
    assert pool_range("10.3.0.0-10.3.0.255") == (V4("10.3.0.0"), V4("10.3.0.255"))  # a range is as written
    assert pool_range("fd00::/120") == (V6("fd00::1"), V6("fd00::ff"))


def test_split_list() -> None:
    assert split_list("10.1.0.0/16, 10.2.0.0/16,") == ["10.1.0.0/16", "10.2.0.0/16"]
    assert split_list(["a,b"]) == ["a,b"]
