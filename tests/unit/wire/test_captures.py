"""Every IKE message of the five strongSwan 5.9.8 captures decodes and re-encodes byte for byte.

See tests/captures/README.md for what the JSON files hold. Checks: the header fields, the
outer payload list, the decrypted SK contents (``sk.decrypted_payloads_hex``, decoded with
the SK header's Next Payload as first type), and values that are logged elsewhere in the
files (nonces, SPIs, IDs, certificates, ESP SPIs, the signed octets' RealMessage).
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pyipsec.iana.ikev2 import AuthMethod, ExchangeType, IdType, NotifyType, PayloadType, ProtocolId
from pyipsec.wire.message import (
    Message,
    decode_message,
    decode_payload_chain,
    encode_message,
    encode_message_prefix,
    encode_payload_chain,
)
from pyipsec.wire.payloads.auth import Authentication
from pyipsec.wire.payloads.base import Payload
from pyipsec.wire.payloads.cert import Certificate, CertificateRequest
from pyipsec.wire.payloads.delete import Delete
from pyipsec.wire.payloads.ident import Identification
from pyipsec.wire.payloads.nonce import Nonce
from pyipsec.wire.payloads.notify import Notify
from pyipsec.wire.payloads.sa import SecurityAssociation
from pyipsec.wire.payloads.sk import EncryptedPayload

CAPTURES = Path(__file__).resolve().parents[2] / "captures"
FILES = sorted(p.name for p in CAPTURES.glob("*.json"))
NON_ESP_MARKER = bytes(4)


@cache
def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CAPTURES / name).read_text())
    return data


def wire_bytes(m: dict[str, Any]) -> bytes:
    raw = bytes.fromhex(m["udp_payload_hex"])
    if m["non_esp_marker"]:
        assert raw[:4] == NON_ESP_MARKER
        raw = raw[4:]
    return raw


def decoded(name: str, index: int) -> Message:
    return decode_message(wire_bytes(load(name)["ike_messages"][index]))


def inner_of(name: str, index: int) -> tuple[Payload, ...]:
    m = load(name)["ike_messages"][index]
    sk = decoded(name, index).payloads[-1]
    assert isinstance(sk, EncryptedPayload)
    return decode_payload_chain(sk.inner_type, bytes.fromhex(m["sk"]["decrypted_payloads_hex"]))


CASES = [(name, i) for name in FILES for i in range(len(load(name)["ike_messages"]))]


def test_all_five_captures_are_present() -> None:
    assert len(FILES) == 5
    assert len(CASES) == 30


def check_listing(payloads: tuple[Payload, ...], listing: list[dict[str, Any]]) -> None:
    assert [int(p.payload_type) for p in payloads] == [e["type"] for e in listing]
    for p, e in zip(payloads, listing, strict=True):
        assert 4 + len(p.encode_body()) == e["length"]
        if "notify_type" in e:
            assert isinstance(p, Notify) and p.notify_type == e["notify_type"]
        if "auth_method" in e:
            assert isinstance(p, Authentication) and p.method == e["auth_method"]


@pytest.mark.parametrize(("name", "index"), CASES)
def test_message_roundtrip(name: str, index: int) -> None:
    m = load(name)["ike_messages"][index]
    raw = wire_bytes(m)
    msg = decode_message(raw)
    assert encode_message(msg) == raw
    assert msg.raw == raw
    assert len(raw) == m["ike_length"]
    assert msg.exchange_type == m["exchange_type"]
    assert msg.exchange_type.name == m["exchange"]
    assert msg.message_id == m["message_id"]
    assert msg.is_response == m["is_response"]
    assert msg.is_initiator == m["initiator_flag"]
    assert int(msg.flags) == int(m["flags"], 16)
    assert msg.spi_i.hex() == m["spi_i"] and msg.spi_r.hex() == m["spi_r"]
    check_listing(msg.payloads, m["payloads"])


@pytest.mark.parametrize(("name", "index"), [c for c in CASES if load(c[0])["ike_messages"][c[1]].get("sk")])
def test_sk_contents_roundtrip(name: str, index: int) -> None:
    m = load(name)["ike_messages"][index]
    msg = decoded(name, index)
    sk = msg.payloads[-1]
    assert isinstance(sk, EncryptedPayload) and len(msg.payloads) == 1
    plaintext = bytes.fromhex(m["sk"]["decrypted_payloads_hex"])
    inner = inner_of(name, index)
    check_listing(inner, m["sk"]["inner_payloads"])
    assert encode_payload_chain(inner) == (sk.inner_type, plaintext)
    # The AAD / integrity prefix is what precedes the SK data in the real message.
    assert encode_message_prefix(msg, len(sk.data)) + sk.data == msg.raw
    if m["sk"]["iv_hex"]:
        assert sk.data.startswith(bytes.fromhex(m["sk"]["iv_hex"]))


@pytest.mark.parametrize("name", FILES)
def test_ike_sa_init_values(name: str) -> None:
    keys = load(name)["ike_sa_keys"]
    req, resp = decoded(name, 0), decoded(name, 1)
    assert req.exchange_type is ExchangeType.IKE_SA_INIT
    assert req.spi_i.hex() == keys["SPIi"] and req.spi_r == bytes(8)
    assert resp.spi_i.hex() == keys["SPIi"] and resp.spi_r.hex() == keys["SPIr"]
    ni, nr = req.find(Nonce), resp.find(Nonce)
    assert ni is not None and ni.data.hex() == keys["Ni"]
    assert nr is not None and nr.data.hex() == keys["Nr"]
    sa_i, sa_r = req.find(SecurityAssociation), resp.find(SecurityAssociation)
    assert sa_i is not None and sa_r is not None
    assert sa_r.proposals[0].protocol is ProtocolId.IKE and sa_r.proposals[0].spi == b""
    assert sa_r.proposals[0] in sa_i.proposals
    assert req.notify(NotifyType.NAT_DETECTION_SOURCE_IP) is not None
    assert resp.notify(NotifyType.NAT_DETECTION_DESTINATION_IP) is not None


@pytest.mark.parametrize("name", FILES)
def test_ike_auth_identities_and_child_spis(name: str) -> None:
    data = load(name)
    roles = data["roles"]
    req, resp = inner_of(name, 2), inner_of(name, 3)
    idi = next(p for p in req if p.payload_type is PayloadType.IDi)
    idr_req = next(p for p in req if p.payload_type is PayloadType.IDr)
    idr = next(p for p in resp if p.payload_type is PayloadType.IDr)
    for ident, want in ((idi, "initiator"), (idr_req, "responder"), (idr, "responder")):
        assert isinstance(ident, Identification) and ident.id_type is IdType.ID_FQDN
        assert str(ident) == roles[want]["id"]
    assert str(idi) == "left.ih.test"
    sa_i = next(p for p in req if isinstance(p, SecurityAssociation))
    sa_r = next(p for p in resp if isinstance(p, SecurityAssociation))
    assert sa_i.proposals[0].protocol is ProtocolId.ESP
    assert sa_i.proposals[0].spi.hex() == data["child_sa"]["initiator_view"]["spi_in"]
    assert sa_r.proposals[0].spi.hex() == data["child_sa"]["responder_view"]["spi_in"]
    assert any(isinstance(p, Notify) and p.notify_type is NotifyType.INITIAL_CONTACT for p in req)


@pytest.mark.parametrize("name", FILES)
def test_signed_octets_start_with_the_raw_first_messages(name: str) -> None:
    # RFC 7296 §2.15: InitiatorSignedOctets = RealMessage1 | NonceRData | MACedIDForI.
    auth = load(name)["authentication"]["auth_payloads"]
    signed_i = bytes.fromhex(auth["initiator"]["signed_octets_hex"])
    signed_r = bytes.fromhex(auth["responder"]["signed_octets_hex"])
    req, resp = decoded(name, 0), decoded(name, 1)
    nr, ni = resp.find(Nonce), req.find(Nonce)
    assert nr is not None and ni is not None
    assert signed_i[: len(req.raw) + len(nr.data)] == req.raw + nr.data
    assert signed_r[: len(resp.raw) + len(ni.data)] == resp.raw + ni.data


@pytest.mark.parametrize("name", FILES)
def test_informational_delete(name: str) -> None:
    assert inner_of(name, 4) == (Delete(ProtocolId.IKE),)
    assert inner_of(name, 5) == ()
    sk = decoded(name, 5).payloads[0]
    assert isinstance(sk, EncryptedPayload) and sk.inner_type is PayloadType.NO_NEXT_PAYLOAD


def test_certificates_and_ca_hashes() -> None:
    name = "strongswan-cert-ecdsa.json"
    pki = CAPTURES / "pki"
    ca = x509.load_pem_x509_certificate((pki / "ca-ecdsa-cert.pem").read_bytes())
    left = x509.load_pem_x509_certificate((pki / "left-ecdsa-cert.pem").read_bytes())
    right = x509.load_pem_x509_certificate((pki / "right-ecdsa-cert.pem").read_bytes())
    spki = ca.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    ca_hash = hashlib.sha1(spki, usedforsecurity=False).digest()

    req, resp = inner_of(name, 2), inner_of(name, 3)
    cert_i = next(p for p in req if isinstance(p, Certificate))
    cert_r = next(p for p in resp if isinstance(p, Certificate))
    assert cert_i == Certificate.x509(left.public_bytes(Encoding.DER))
    assert cert_r == Certificate.x509(right.public_bytes(Encoding.DER))
    certreq = next(p for p in req if isinstance(p, CertificateRequest))
    assert certreq.ca_key_hashes == (ca_hash,)
    init_certreq = decoded(name, 1).find(CertificateRequest)
    assert init_certreq is not None and ca_hash in init_certreq.ca_key_hashes
    auth = next(p for p in req if isinstance(p, Authentication))
    assert auth.method is AuthMethod.DIGITAL_SIGNATURE
    algorithm, signature = auth.split_signature()
    assert algorithm == bytes.fromhex("300a06082a8648ce3d040302")  # ecdsa-with-SHA256, RFC 7427 A.3.1
    assert signature[0] == 0x30  # a DER ECDSA-Sig-Value
