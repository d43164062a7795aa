"""Allowed payloads per exchange (RFC 7296 §1.2-§1.4)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyipsec.errors import InvalidSyntax
from pyipsec.iana.ikev2 import ExchangeType, NotifyType, PayloadType, ProtocolId
from pyipsec.iana.transforms import KeId
from pyipsec.wire.message import Message, decode_message, decode_payload_chain
from pyipsec.wire.payloads.cert import CertificateRequest
from pyipsec.wire.payloads.delete import Delete
from pyipsec.wire.payloads.ident import Identification
from pyipsec.wire.payloads.ke import KeyExchange
from pyipsec.wire.payloads.nonce import Nonce
from pyipsec.wire.payloads.notify import Notify
from pyipsec.wire.payloads.sk import EncryptedPayload
from pyipsec.wire.payloads.unknown import UnknownPayload
from pyipsec.wire.payloads.vendor import VendorId
from pyipsec.wire.rules import RULES, MessageKind, check_payloads, rule_for

CAPTURES = Path(__file__).resolve().parents[2] / "captures"
INIT_REQ = MessageKind(ExchangeType.IKE_SA_INIT, False)
INFO_REQ = MessageKind(ExchangeType.INFORMATIONAL, False)
KE = KeyExchange(KeId.CURVE25519, bytes(32))
NONCE = Nonce(bytes(32))


def test_every_captured_message_passes() -> None:
    checked = 0
    for path in sorted(CAPTURES.glob("*.json")):
        for m in json.loads(path.read_text())["ike_messages"]:
            raw = bytes.fromhex(m["udp_payload_hex"])
            msg = decode_message(raw[4:] if m["non_esp_marker"] else raw)
            payloads = msg.payloads
            if isinstance(payloads[-1], EncryptedPayload):
                payloads = decode_payload_chain(
                    payloads[-1].inner_type, bytes.fromhex(m["sk"]["decrypted_payloads_hex"])
                )
            check_payloads(MessageKind.of(msg), payloads)
            checked += 1
    assert checked == 30


def test_kind_of_message() -> None:
    msg = Message(
        bytes(8),
        bytes(8),
        exchange_type=ExchangeType.IKE_AUTH,
        message_id=1,
        is_initiator=False,
        is_response=True,
    )
    assert MessageKind.of(msg) == MessageKind(ExchangeType.IKE_AUTH, True)
    assert str(MessageKind.of(msg)) == "IKE_AUTH response"


def test_payload_out_of_place() -> None:
    with pytest.raises(
        InvalidSyntax, match=r"IDi payload not allowed in IKE_SA_INIT request \(RFC 7296 §1.2"
    ):
        check_payloads(INIT_REQ, [KE, NONCE, Identification.from_fqdn("a")])
    with pytest.raises(InvalidSyntax, match="CERTREQ"):
        check_payloads(MessageKind(ExchangeType.IKE_AUTH, True), [CertificateRequest.x509()])
    with pytest.raises(InvalidSyntax, match="KE payload"):
        check_payloads(INFO_REQ, [KE])
    with pytest.raises(InvalidSyntax, match="SK payload"):
        check_payloads(INIT_REQ, [EncryptedPayload(PayloadType.NO_NEXT_PAYLOAD, b"")])


def test_repeated_payload() -> None:
    with pytest.raises(InvalidSyntax, match="2 NONCE payloads"):
        check_payloads(INIT_REQ, [KE, NONCE, NONCE])


def test_repeatable_payloads() -> None:
    n = Notify.of(NotifyType.INITIAL_CONTACT)
    d = Delete(ProtocolId.ESP, (bytes(4),))
    check_payloads(INFO_REQ, [n, n, d, d, VendorId(b"a"), VendorId(b"b")])


def test_unknown_payload_types_are_not_judged() -> None:
    check_payloads(INIT_REQ, [KE, NONCE, UnknownPayload(PayloadType(200), False, body=b"")])
    check_payloads(INIT_REQ, [UnknownPayload(PayloadType.GSPM, False, body=b"")] * 2)


def test_unchecked_exchanges() -> None:
    kind = MessageKind(ExchangeType.IKE_INTERMEDIATE, False)
    assert rule_for(kind) is None
    check_payloads(kind, [KE, KE, Identification.from_fqdn("a")])


def test_every_rule_cites_an_rfc() -> None:
    assert len(RULES) == 8
    for rule in RULES.values():
        assert rule.reference.startswith("RFC ")
        assert {PayloadType.N, PayloadType.V} <= rule.allowed
