"""Hypothesis strategies for the part-B payloads (Notify, TS, CP, EAP, SK, SKF).

Each strategy yields valid payload objects (ones that encode and decode back to
themselves), small enough that a message built from several stays well below 64 KiB.
The message-level property tests import these to build whole messages.
"""

from __future__ import annotations

from hypothesis import strategies as st

from pyipsec.iana.ikev2 import (
    CfgAttr,
    CfgType,
    EapCode,
    EapType,
    HashAlgorithm,
    NotifyType,
    PayloadType,
    ProtocolId,
    TsType,
)
from pyipsec.iana.transforms import KeId
from pyipsec.wire.payloads.cp import IP4_ATTRIBUTES, IP6_ATTRIBUTES, ConfigAttribute, Configuration
from pyipsec.wire.payloads.eap import EapMessage, EapPayload
from pyipsec.wire.payloads.notify import Notify
from pyipsec.wire.payloads.sk import EncryptedFragment, EncryptedPayload
from pyipsec.wire.payloads.ts import RawTrafficSelector, TrafficSelector, TrafficSelectors

__all__ = [
    "config_attributes",
    "configurations",
    "eap_messages",
    "eap_payloads",
    "encrypted_fragments",
    "encrypted_payloads",
    "notifies",
    "payload_types",
    "traffic_selector_items",
    "traffic_selectors",
    "traffic_selectors_payloads",
    "typed_notifies",
]

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
ipv4 = st.ip_addresses(v=4)
ipv6 = st.ip_addresses(v=6)
ips = st.one_of(ipv4, ipv6)
small_bytes = st.binary(max_size=48)
fqdns = st.from_regex(r"\A[a-z][a-z0-9-]{0,15}(\.[a-z0-9-]{1,15}){0,3}\Z")


def payload_types() -> st.SearchStrategy[PayloadType]:
    """Any one-octet payload type (assigned or not)."""
    return u8.map(PayloadType)


# ------------------------------------------------------------------ Notify


def typed_notifies() -> st.SearchStrategy[Notify]:
    """Notifications built by the typed helpers (their accessors read them back)."""
    return st.one_of(
        st.builds(Notify.of, st.sampled_from([NotifyType.INITIAL_CONTACT, NotifyType.MOBIKE_SUPPORTED])),
        st.builds(Notify.invalid_ke, st.sampled_from(list(KeId))),
        st.builds(Notify.nat_detection_source_ip, st.binary(min_size=20, max_size=20)),
        st.builds(Notify.nat_detection_destination_ip, st.binary(min_size=20, max_size=20)),
        st.builds(Notify.cookie, st.binary(min_size=1, max_size=64)),
        st.builds(Notify.cookie2, st.binary(min_size=8, max_size=64)),
        st.builds(
            Notify.rekey_sa,
            st.sampled_from([ProtocolId.ESP, ProtocolId.AH]),
            st.binary(min_size=4, max_size=4),
        ),
        st.builds(Notify.set_window_size, st.integers(0, 0xFFFFFFFF)),
        st.builds(Notify.auth_lifetime, st.integers(0, 0xFFFFFFFF)),
        st.builds(Notify.ipcomp_supported, u16, u8, st.binary(max_size=8)),
        st.builds(
            Notify.signature_hash_algorithms, st.lists(st.sampled_from(list(HashAlgorithm)), max_size=6)
        ),
        st.builds(Notify.additional_address, ips),
        st.builds(Notify.redirect, ips | fqdns, st.binary(max_size=32)),
        st.builds(Notify.redirected_from, ips | fqdns),
        ipv4.flatmap(lambda a: st.builds(Notify.no_nats_allowed, st.just(a), ipv4, u16, u16)),
        ipv6.flatmap(lambda a: st.builds(Notify.no_nats_allowed, st.just(a), ipv6, u16, u16)),
    )


def notifies() -> st.SearchStrategy[Notify]:
    """Typed notifications the engine sends, and arbitrary (protocol, SPI, type, data)."""
    raw = st.builds(
        Notify,
        u8.map(ProtocolId),
        st.binary(max_size=16),
        u16.map(NotifyType),
        small_bytes,
    )
    return st.one_of(typed_notifies(), raw)


# ------------------------------------------------------------------ TS


def traffic_selectors() -> st.SearchStrategy[TrafficSelector]:
    def build(v: int) -> st.SearchStrategy[TrafficSelector]:
        addr = ipv4 if v == 4 else ipv6
        ts_type = TsType.TS_IPV4_ADDR_RANGE if v == 4 else TsType.TS_IPV6_ADDR_RANGE
        return st.builds(TrafficSelector, st.just(ts_type), u8, u16, u16, addr, addr)

    return st.sampled_from([4, 6]).flatmap(build)


def traffic_selector_items() -> st.SearchStrategy[TrafficSelector | RawTrafficSelector]:
    raw = st.builds(
        RawTrafficSelector,
        u8.filter(lambda t: t not in (7, 8)).map(TsType),
        st.binary(max_size=24),
        u8,
    )
    return st.one_of(traffic_selectors(), raw)


def traffic_selectors_payloads() -> st.SearchStrategy[TrafficSelectors]:
    return st.builds(
        TrafficSelectors,
        st.sampled_from([PayloadType.TSi, PayloadType.TSr]),
        st.lists(traffic_selector_items(), max_size=5).map(tuple),
    )


# ------------------------------------------------------------------ CP

_CHECKED = (
    IP4_ATTRIBUTES
    | IP6_ATTRIBUTES
    | {
        CfgAttr.INTERNAL_IP6_ADDRESS,
        CfgAttr.INTERNAL_IP4_SUBNET,
        CfgAttr.INTERNAL_IP6_SUBNET,
        CfgAttr.SUPPORTED_ATTRIBUTES,
    }
)


def config_attributes() -> st.SearchStrategy[ConfigAttribute]:
    opt4 = st.none() | ipv4
    opt6 = st.none() | ipv6
    return st.one_of(
        st.builds(ConfigAttribute.ip4, st.sampled_from(sorted(IP4_ATTRIBUTES)), opt4),
        st.builds(ConfigAttribute.ip6, st.sampled_from(sorted(IP6_ATTRIBUTES)), opt6),
        st.builds(
            ConfigAttribute.ip6_address,
            st.none() | st.tuples(ipv6, st.integers(0, 128)).map(lambda t: f"{t[0]}/{t[1]}"),
        ),
        st.builds(
            ConfigAttribute.ip4_subnet,
            st.none() | st.tuples(ipv4, st.integers(0, 32)).map(lambda t: f"{t[0]}/{t[1]}"),
        ),
        st.builds(
            ConfigAttribute.ip6_subnet,
            st.none() | st.tuples(ipv6, st.integers(0, 128)).map(lambda t: f"{t[0]}/{t[1]}"),
        ),
        st.builds(ConfigAttribute.application_version, st.text(alphabet=st.characters(max_codepoint=127))),
        st.builds(ConfigAttribute.dns_domain, st.just("") | fqdns),
        st.builds(ConfigAttribute.supported_attributes, st.lists(u16.map(CfgAttr), max_size=8)),
        st.builds(
            ConfigAttribute,
            st.integers(0, 0x7FFF).filter(lambda t: t not in _CHECKED).map(CfgAttr),
            st.binary(max_size=24),
        ),
    )


def configurations() -> st.SearchStrategy[Configuration]:
    return st.builds(Configuration, u8.map(CfgType), st.lists(config_attributes(), max_size=6).map(tuple))


# ------------------------------------------------------------------ EAP


def eap_messages() -> st.SearchStrategy[EapMessage]:
    typed = st.builds(
        EapMessage,
        st.sampled_from([EapCode.REQUEST, EapCode.RESPONSE]) | st.integers(5, 255).map(EapCode),
        u8,
        u8.map(EapType),
        small_bytes,
    )
    bare = st.builds(
        EapMessage, st.sampled_from([EapCode.SUCCESS, EapCode.FAILURE]) | st.integers(5, 255).map(EapCode), u8
    )
    return st.one_of(typed, bare)


def eap_payloads() -> st.SearchStrategy[EapPayload]:
    return eap_messages().map(EapPayload.of)


# ------------------------------------------------------------------ SK, SKF


def encrypted_payloads() -> st.SearchStrategy[EncryptedPayload]:
    return st.builds(EncryptedPayload, payload_types(), st.binary(max_size=96))


def encrypted_fragments() -> st.SearchStrategy[EncryptedFragment]:
    def build(total: int) -> st.SearchStrategy[EncryptedFragment]:
        return st.integers(1, total).flatmap(
            lambda n: st.builds(
                EncryptedFragment,
                st.just(n),
                st.just(total),
                payload_types() if n == 1 else st.just(PayloadType.NO_NEXT_PAYLOAD),
                st.binary(max_size=96),
            )
        )

    return st.integers(1, 0xFFFF).flatmap(build)
