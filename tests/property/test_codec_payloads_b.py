"""Round trips and robustness of the Notify, TS, CP, EAP, SK and SKF payload codecs."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Interface, IPv6Network, ip_network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyipsec.errors import DecodeError
from pyipsec.iana.ikev2 import CfgAttr, CfgType, NotifyType, PayloadType, ProtocolId
from pyipsec.iana.transforms import KeId
from pyipsec.wire.buffer import Reader
from pyipsec.wire.payloads.base import Payload
from pyipsec.wire.payloads.cp import IP4_ATTRIBUTES, IP6_ATTRIBUTES, ConfigAttribute, Configuration
from pyipsec.wire.payloads.eap import EapMessage, EapPayload
from pyipsec.wire.payloads.notify import GatewayRedirect, IpcompSupported, NoNatsAllowed, Notify
from pyipsec.wire.payloads.sk import EncryptedFragment, EncryptedPayload, decode_sk, decode_skf
from pyipsec.wire.payloads.ts import TrafficSelector, TrafficSelectors
from tests.property.strategies_b import (
    config_attributes,
    configurations,
    eap_messages,
    eap_payloads,
    encrypted_fragments,
    encrypted_payloads,
    notifies,
    payload_types,
    traffic_selectors,
    traffic_selectors_payloads,
    typed_notifies,
)

_DECODERS: dict[PayloadType, Callable[[PayloadType, Reader], Payload]] = {
    PayloadType.N: Notify.decode_body,
    PayloadType.TSi: TrafficSelectors.decode_body,
    PayloadType.TSr: TrafficSelectors.decode_body,
    PayloadType.CP: Configuration.decode_body,
    PayloadType.EAP: EapPayload.decode_body,
}


def _round_trip(p: Payload) -> Payload:
    body = p.encode_body()
    r = Reader(body)
    out = _DECODERS[p.payload_type](p.payload_type, r)
    assert r.at_end()
    return out


# ------------------------------------------------------------ round trips


@given(notifies())
def test_notify_round_trip(n: Notify) -> None:
    assert _round_trip(n) == n


@given(traffic_selectors_payloads())
def test_ts_round_trip(ts: TrafficSelectors) -> None:
    assert _round_trip(ts) == ts


@given(configurations())
def test_cp_round_trip(cp: Configuration) -> None:
    assert _round_trip(cp) == cp


@given(eap_payloads())
def test_eap_round_trip(p: EapPayload) -> None:
    out = _round_trip(p)
    assert out == p
    assert isinstance(out, EapPayload)
    assert EapPayload.of(out.eap_message()) == p


@given(eap_messages())
def test_eap_message_round_trip(m: EapMessage) -> None:
    assert EapMessage.decode(m.encode()) == m
    assert len(m.encode()) == len(m)


@given(encrypted_payloads())
def test_sk_round_trip(sk: EncryptedPayload) -> None:
    assert decode_sk(sk.inner_type, Reader(sk.encode_body())) == sk


@given(encrypted_fragments())
def test_skf_round_trip(f: EncryptedFragment) -> None:
    assert decode_skf(f.inner_type, Reader(f.encode_body())) == f


# ------------------------------------------------------------ typed helpers


def _accessor(n: Notify) -> Callable[[], object]:
    """The accessor that reads n's notification data (check_no_data for the rest)."""
    accessors: dict[NotifyType, Callable[[], object]] = {
        NotifyType.INVALID_KE_PAYLOAD: n.wanted_group,
        NotifyType.NAT_DETECTION_SOURCE_IP: n.nat_hash,
        NotifyType.NAT_DETECTION_DESTINATION_IP: n.nat_hash,
        NotifyType.COOKIE: n.cookie_data,
        NotifyType.COOKIE2: n.cookie_data,
        NotifyType.REKEY_SA: n.rekey_spi,
        NotifyType.SET_WINDOW_SIZE: n.window_size,
        NotifyType.AUTH_LIFETIME: n.lifetime_seconds,
        NotifyType.IPCOMP_SUPPORTED: n.ipcomp,
        NotifyType.SIGNATURE_HASH_ALGORITHMS: n.hash_algorithms,
        NotifyType.ADDITIONAL_IP4_ADDRESS: n.address,
        NotifyType.ADDITIONAL_IP6_ADDRESS: n.address,
        NotifyType.REDIRECT: n.redirect_data,
        NotifyType.REDIRECTED_FROM: n.redirect_data,
        NotifyType.NO_NATS_ALLOWED: n.no_nats,
    }
    return accessors.get(n.notify_type, n.check_no_data)


@given(typed_notifies())
def test_typed_notifies_read_back(n: Notify) -> None:
    """What a typed builder produced, its accessor reads without error after a round trip."""
    out = _round_trip(n)
    assert isinstance(out, Notify)
    _accessor(out)()


@given(st.sampled_from(list(KeId)) | st.integers(0, 0xFFFF))
def test_invalid_ke_helper(group: int) -> None:
    assert Notify.invalid_ke(group).wanted_group() == group


@given(st.binary(min_size=1, max_size=64), st.binary(min_size=8, max_size=64))
def test_cookie_helpers(c1: bytes, c2: bytes) -> None:
    assert Notify.cookie(c1).cookie_data() == c1
    assert Notify.cookie2(c2).cookie_data() == c2


@given(st.integers(0, 0xFFFFFFFF))
def test_u32_helpers(v: int) -> None:
    assert Notify.set_window_size(v).window_size() == v
    assert Notify.auth_lifetime(v).lifetime_seconds() == v


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFF), st.binary(max_size=8))
def test_ipcomp_helper(cpi: int, tid: int, attrs: bytes) -> None:
    assert Notify.ipcomp_supported(cpi, tid, attrs).ipcomp() == IpcompSupported(cpi, tid, attrs)


@given(st.lists(st.integers(0, 0xFFFF), max_size=10))
def test_signature_hash_helper(algs: list[int]) -> None:
    assert list(Notify.signature_hash_algorithms(algs).hash_algorithms()) == algs


@given(st.ip_addresses())
def test_additional_address_helper(addr: IPv4Address | IPv6Address) -> None:
    assert Notify.additional_address(addr).address() == addr


@given(st.ip_addresses() | st.from_regex(r"\A[a-z][a-z0-9.-]{0,40}\Z"), st.binary(max_size=64))
def test_redirect_helpers(gw: IPv4Address | IPv6Address | str, nonce: bytes) -> None:
    assert Notify.redirect(gw, nonce).redirect_data() == GatewayRedirect(gw, nonce)
    assert Notify.redirected_from(gw).redirect_data() == GatewayRedirect(gw)


@given(
    st.tuples(st.ip_addresses(v=4), st.ip_addresses(v=4))
    | st.tuples(st.ip_addresses(v=6), st.ip_addresses(v=6)),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
)
def test_no_nats_helper(
    addrs: tuple[IPv4Address | IPv6Address, IPv4Address | IPv6Address], sp: int, dp: int
) -> None:
    n = Notify.no_nats_allowed(addrs[0], addrs[1], sp, dp)
    assert n.no_nats() == NoNatsAllowed(addrs[0], addrs[1], sp, dp)


@given(st.sampled_from([ProtocolId.ESP, ProtocolId.AH]), st.binary(min_size=4, max_size=4))
def test_rekey_sa_helper(protocol: ProtocolId, spi: bytes) -> None:
    n = _round_trip(Notify.rekey_sa(protocol, spi))
    assert isinstance(n, Notify) and n.rekey_spi() == spi and n.protocol == protocol


@given(
    st.ip_addresses(),
    st.integers(0, 128),
    st.integers(0, 255),
    st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)),
)
def test_ts_from_network_covers_exactly_the_network(
    addr: IPv4Address | IPv6Address, prefix: int, proto: int, ports: tuple[int, int]
) -> None:
    net = ip_network((addr, min(prefix, addr.max_prefixlen)), strict=False)
    ts = TrafficSelector.from_network(str(net), protocol=proto, ports=ports)
    assert ts.networks() == (net,)
    assert (ts.ip_protocol, ts.start_port, ts.end_port) == (proto, *ports)
    assert str(ts).startswith(str(net))


@given(traffic_selectors())
def test_ts_networks_cover_the_range(ts: TrafficSelector) -> None:
    nets = ts.networks()
    if int(ts.start_addr) > int(ts.end_addr):
        assert nets == ()
    else:
        assert nets[0].network_address == ts.start_addr
        assert nets[-1].broadcast_address == ts.end_addr
        assert sum(n.num_addresses for n in nets) == int(ts.end_addr) - int(ts.start_addr) + 1
    assert str(ts)


@given(config_attributes())
def test_config_attributes_read_back(a: ConfigAttribute) -> None:
    """Attributes built by the typed constructors survive a round trip and read back."""
    cp = _round_trip(Configuration(CfgType.CFG_REPLY, (a,)))
    assert isinstance(cp, Configuration) and cp.attributes == (a,)
    accessor = _cp_accessor(a)
    if accessor is not None:
        accessor()


@given(
    st.ip_addresses(v=4),
    st.integers(0, 32),
    st.ip_addresses(v=6),
    st.integers(0, 128),
)
def test_cp_network_helpers(a4: IPv4Address, p4: int, a6: IPv6Address, p6: int) -> None:
    n4 = IPv4Network((a4, p4), strict=False)
    n6 = IPv6Network((a6, p6), strict=False)
    assert ConfigAttribute.ip4_subnet(n4).ip4_network() == n4
    assert ConfigAttribute.ip6_subnet(n6).ip6_network() == n6
    iface = IPv6Interface((a6, p6))
    assert ConfigAttribute.ip6_address(iface).ip6_interface() == iface


# ------------------------------------------------------------ random bytes


@pytest.mark.parametrize("ptype", list(_DECODERS), ids=lambda t: t.name)
@given(data=st.binary(max_size=80))
def test_random_bytes_only_raise_decode_error(ptype: PayloadType, data: bytes) -> None:
    r = Reader(data)
    try:
        _DECODERS[ptype](ptype, r)
    except DecodeError:
        return
    assert r.at_end()


@given(st.one_of(notifies(), traffic_selectors_payloads(), configurations(), eap_payloads()), st.data())
def test_mutated_encodings_only_raise_decode_error(p: Payload, data: st.DataObject) -> None:
    """Valid bodies with octets overwritten, cut or appended: decode or DecodeError, nothing else."""
    body = bytearray(p.encode_body())
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["set", "cut", "add"]))
        if op == "set" and body:
            body[data.draw(st.integers(0, len(body) - 1))] = data.draw(st.integers(0, 255))
        elif op == "cut" and body:
            del body[data.draw(st.integers(0, len(body) - 1)) :]
        else:
            body += data.draw(st.binary(min_size=1, max_size=4))
    r = Reader(bytes(body))
    try:
        _DECODERS[p.payload_type](p.payload_type, r)
    except DecodeError:
        return
    assert r.at_end()


@given(payload_types(), st.binary(max_size=40))
def test_random_bytes_into_sk_and_skf(inner: PayloadType, data: bytes) -> None:
    assert decode_sk(inner, Reader(data)).data == data
    try:
        f = decode_skf(inner, Reader(data))
    except DecodeError:
        return
    assert f.encode_body() == data


@given(st.binary(max_size=40))
def test_random_bytes_into_eap_message(data: bytes) -> None:
    try:
        m = EapMessage.decode(data)
    except DecodeError:
        return
    assert m.encode() == data


@given(st.integers(0, 0xFFFF).map(NotifyType), st.binary(max_size=8), st.binary(max_size=40))
def test_random_notification_data_into_accessors(ntype: NotifyType, spi: bytes, data: bytes) -> None:
    n = Notify(ProtocolId.ESP, spi, ntype, data)
    with contextlib.suppress(DecodeError):
        _accessor(n)()


@given(st.integers(0, 0x7FFF), st.binary(max_size=20))
def test_random_attribute_values_into_accessors(attr_type: int, value: bytes) -> None:
    try:
        cp = Configuration.decode_body(
            PayloadType.CP,
            Reader(
                bytes([1, 0, 0, 0]) + attr_type.to_bytes(2, "big") + len(value).to_bytes(2, "big") + value
            ),
        )
    except DecodeError:
        return
    (a,) = cp.attributes
    accessor = _cp_accessor(a)
    if accessor is not None:
        with contextlib.suppress(DecodeError):
            accessor()


def _cp_accessor(a: ConfigAttribute) -> Callable[[], object] | None:
    if a.attr_type in IP4_ATTRIBUTES:
        return a.ip4_value
    if a.attr_type in IP6_ATTRIBUTES:
        return a.ip6_value
    return {
        CfgAttr.INTERNAL_IP6_ADDRESS: a.ip6_interface,
        CfgAttr.INTERNAL_IP4_SUBNET: a.ip4_network,
        CfgAttr.INTERNAL_IP6_SUBNET: a.ip6_network,
        CfgAttr.APPLICATION_VERSION: a.text,
        CfgAttr.INTERNAL_DNS_DOMAIN: a.text,
        CfgAttr.SUPPORTED_ATTRIBUTES: a.attribute_types,
    }.get(a.attr_type)
