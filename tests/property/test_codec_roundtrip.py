"""Hypothesis: decode(encode(x)) == x for every payload and for whole messages (RFC 7296 §3)."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Network
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from pyipsec.iana.ikev2 import (
    AuthMethod,
    CertEncoding,
    CfgAttr,
    CfgType,
    EapCode,
    EapType,
    ExchangeType,
    IdType,
    NotifyType,
    PayloadType,
    ProtocolId,
)
from pyipsec.iana.transforms import KeId, TransformAttr, TransformType
from pyipsec.wire.buffer import Reader
from pyipsec.wire.message import (
    Message,
    decode_message,
    decode_payload_chain,
    encode_message,
    encode_message_prefix,
    encode_payload_chain,
)
from pyipsec.wire.payloads.auth import Authentication
from pyipsec.wire.payloads.base import Payload, decoder_for, registered_types
from pyipsec.wire.payloads.cert import Certificate, CertificateRequest
from pyipsec.wire.payloads.cp import ConfigAttribute, Configuration
from pyipsec.wire.payloads.delete import Delete
from pyipsec.wire.payloads.eap import EapMessage, EapPayload
from pyipsec.wire.payloads.ident import Identification
from pyipsec.wire.payloads.ke import KeyExchange
from pyipsec.wire.payloads.nonce import Nonce
from pyipsec.wire.payloads.notify import Notify
from pyipsec.wire.payloads.sa import Proposal, SecurityAssociation, Transform, TransformAttribute
from pyipsec.wire.payloads.sk import EncryptedFragment, EncryptedPayload
from pyipsec.wire.payloads.ts import TrafficSelector, TrafficSelectors
from pyipsec.wire.payloads.unknown import UnknownPayload
from pyipsec.wire.payloads.vendor import VendorId

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
blob = st.binary(max_size=64)

# -- part A payloads ----------------------------------------------------------------------------

attributes = st.one_of(
    st.builds(
        TransformAttribute,
        st.integers(0, 0x7FFF).filter(lambda t: t != TransformAttr.KEY_LENGTH).map(TransformAttr),
        st.binary(min_size=2, max_size=2),
        tv=st.just(True),
    ),
    st.builds(
        TransformAttribute,
        st.integers(0, 0x7FFF).filter(lambda t: t != TransformAttr.KEY_LENGTH).map(TransformAttr),
        st.binary(max_size=8),
        tv=st.just(False),
    ),
)
transforms = st.builds(
    Transform,
    u8.map(TransformType),
    u16,
    key_length=st.none() | u16,
    extra_attributes=st.lists(attributes, max_size=3).map(tuple),
)


@st.composite
def proposals(draw: st.DrawFn) -> Proposal:
    protocol = ProtocolId(draw(st.sampled_from([1, 2, 3]) | u8))
    if protocol == ProtocolId.IKE:
        spi = draw(st.sampled_from([b"", bytes(range(8))]))
    elif protocol in (ProtocolId.AH, ProtocolId.ESP):
        spi = draw(st.binary(min_size=4, max_size=4))
    else:
        spi = draw(st.binary(max_size=12))
    return Proposal(draw(u8), protocol, spi=spi, transforms=tuple(draw(st.lists(transforms, max_size=6))))


security_associations = st.builds(
    SecurityAssociation, st.lists(proposals(), min_size=1, max_size=4).map(tuple)
)
key_exchanges = st.builds(KeyExchange, u16.map(KeId), st.binary(max_size=300))


@st.composite
def identifications(draw: st.DrawFn) -> Identification:
    ptype = draw(st.sampled_from([PayloadType.IDi, PayloadType.IDr]))
    id_type = IdType(draw(st.sampled_from([1, 2, 3, 5, 9, 11, 13]) | u8))
    size = {IdType.ID_IPV4_ADDR: 4, IdType.ID_IPV6_ADDR: 16}.get(id_type)
    data = draw(st.binary(min_size=size, max_size=size) if size is not None else blob)
    return Identification(ptype, id_type, data=data)


certificates = st.builds(Certificate, u8.map(CertEncoding), st.binary(max_size=200))
certificate_requests = st.one_of(
    st.builds(CertificateRequest.x509, st.lists(st.binary(min_size=20, max_size=20), max_size=4)),
    st.builds(CertificateRequest, u8.filter(lambda e: e != 4).map(CertEncoding), blob),
)
authentications = st.builds(Authentication, u8.map(AuthMethod), blob)
nonces = st.builds(Nonce, st.binary(min_size=16, max_size=256))
vendor_ids = st.builds(VendorId, blob)
deletes = st.one_of(
    st.just(Delete.ike()),
    st.builds(
        Delete,
        st.sampled_from([ProtocolId.AH, ProtocolId.ESP]),
        st.lists(st.binary(min_size=4, max_size=4), max_size=8).map(tuple),
    ),
)
_UNREGISTERED = [t for t in range(1, 256) if PayloadType(t) not in registered_types() and t not in (46, 53)]
unknowns = st.builds(
    UnknownPayload, st.sampled_from(_UNREGISTERED).map(PayloadType), st.just(False), body=blob
)

PART_A = [
    security_associations,
    key_exchanges,
    identifications(),
    certificates,
    certificate_requests,
    authentications,
    nonces,
    vendor_ids,
    deletes,
]

# -- part B payloads (simple instances: their own property tests go deeper) ----------------------

notifies = st.builds(Notify, u8.map(ProtocolId), st.binary(max_size=8), u16.map(NotifyType), blob)
traffic_selectors = st.builds(
    TrafficSelectors,
    st.sampled_from([PayloadType.TSi, PayloadType.TSr]),
    st.lists(
        st.builds(
            lambda addr, prefix, proto: TrafficSelector.from_network(
                IPv4Network((addr, prefix), strict=False), protocol=proto
            ),
            st.integers(0, 2**32 - 1),
            st.integers(0, 32),
            u8,
        ),
        max_size=3,
    ).map(tuple),
)
configurations = st.builds(
    Configuration,
    st.sampled_from(list(CfgType)),
    st.lists(
        st.builds(ConfigAttribute, st.just(CfgAttr.APPLICATION_VERSION), st.binary(max_size=16)), max_size=3
    ).map(tuple),
)
eap_payloads = st.builds(
    lambda ident, data: EapPayload.of(EapMessage(EapCode.RESPONSE, ident, EapType.IDENTITY, data)), u8, blob
)
PART_B = [notifies, traffic_selectors, configurations, eap_payloads]

plain_payloads: st.SearchStrategy[Payload] = st.one_of(*PART_A, *PART_B, unknowns)
encrypted = st.one_of(
    st.builds(EncryptedPayload, st.sampled_from(list(PayloadType)), st.binary(max_size=100)),
    st.builds(
        lambda total, inner, data: EncryptedFragment(1, total, inner, data),
        st.integers(1, 0xFFFF),
        st.sampled_from(list(PayloadType)),
        blob,
    ),
    st.builds(
        lambda n, extra, data: EncryptedFragment(n, n + extra, PayloadType.NO_NEXT_PAYLOAD, data),
        st.integers(2, 100),
        st.integers(0, 100),
        blob,
    ),
)


@given(st.one_of(*PART_A))
def test_payload_body_roundtrip(p: Any) -> None:
    decode = decoder_for(p.payload_type)
    assert decode is not None
    r = Reader(p.encode_body())
    assert decode(p.payload_type, r) == p
    assert r.at_end()


@given(st.lists(plain_payloads, max_size=8))
def test_chain_roundtrip(payloads: list[Payload]) -> None:
    first, data = encode_payload_chain(payloads)
    assert decode_payload_chain(first, data) == tuple(payloads)


@st.composite
def messages(draw: st.DrawFn) -> Message:
    payloads = draw(st.lists(plain_payloads, max_size=6))
    if draw(st.booleans()):
        payloads.append(draw(encrypted))
    return Message(
        draw(st.binary(min_size=8, max_size=8)),
        draw(st.binary(min_size=8, max_size=8)),
        exchange_type=ExchangeType(draw(st.sampled_from([34, 35, 36, 37]) | u8)),
        message_id=draw(st.integers(0, 2**32 - 1)),
        is_initiator=draw(st.booleans()),
        is_response=draw(st.booleans()),
        payloads=tuple(payloads),
        minor_version=draw(st.integers(0, 15)),
        extra_flags=draw(u8.map(lambda f: f & ~0x28)),
    )


@given(messages())
def test_message_roundtrip(msg: Message) -> None:
    wire = encode_message(msg)
    back = decode_message(wire)
    assert back == msg
    assert back.raw == wire
    assert encode_message(back) == wire


@given(messages(), st.binary(max_size=100))
def test_prefix_plus_data_is_the_message(msg: Message, data: bytes) -> None:
    last = msg.payloads[-1] if msg.payloads else None
    if not isinstance(last, EncryptedPayload | EncryptedFragment):
        return
    full = replace(msg, payloads=(*msg.payloads[:-1], replace(last, data=data)))
    assert encode_message_prefix(msg, len(data)) + data == encode_message(full)
