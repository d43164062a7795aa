"""Key derivation, SK protection, AUTH and proposals against five real strongSwan 5.9.8 exchanges.

Each capture (tests/captures/README.md) holds the datagrams of one IKE SA's life and the keys
strongSwan logged. Everything here is recomputed by pyipsec from the logged inputs (nonces,
SPIs, g^ir, PSK, certificates) and compared with what strongSwan logged or sent:
SKEYSEED and SK_* (RFC 7296 §2.14), the first Child SA's KEYMAT (§2.17), every encrypted IKE
message (§3.14, RFC 5282, RFC 7634) in both directions, both AUTH payloads (§2.15, RFC 7427)
and the negotiated proposals.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from cryptography import x509

from pyipsec.crypto.aead import AeadSpec
from pyipsec.crypto.cipher import CipherSpec
from pyipsec.crypto.integ import IntegSpec
from pyipsec.crypto.prf import PrfSpec
from pyipsec.crypto.registry import REGISTRY
from pyipsec.crypto.sig import SIGNATURE_HASHES, verify_auth
from pyipsec.errors import AuthenticationFailed, IntegrityError
from pyipsec.iana.ikev2 import AuthMethod, PayloadType, ProtocolId
from pyipsec.ike.keymat import (
    IkeKeys,
    auth_octets,
    derive_child_keys,
    derive_ike_keys,
    psk_auth,
    skeyseed,
    verify_psk_auth,
)
from pyipsec.ike.proposal import ChosenProposal, ProposalSpec, select
from pyipsec.ike.proposal_text import format_proposal, parse_proposals
from pyipsec.ike.protect import SkProtector
from pyipsec.wire.message import Message, decode_message, encode_payload_chain
from pyipsec.wire.payloads.auth import Authentication
from pyipsec.wire.payloads.base import Payload
from pyipsec.wire.payloads.ident import Identification
from pyipsec.wire.payloads.nonce import Nonce
from pyipsec.wire.payloads.sa import SecurityAssociation, Transform

CAPTURES = Path(__file__).resolve().parents[1] / "captures"
FILES = sorted(CAPTURES.glob("strongswan-*.json"))
PSK_FILES = [f for f in FILES if json.loads(f.read_text())["authentication"]["method"] == "psk"]
CERT_FILES = [f for f in FILES if f not in PSK_FILES]

# The proposals each capture negotiated, in our keyword grammar (README table).
EXPECTED_PROPOSALS = {
    "strongswan-cert-ecdsa": ("aes256gcm16-prfsha256-ecp256", "aes256gcm16"),
    "strongswan-chacha20": ("chacha20poly1305-prfsha256-x25519", "chacha20poly1305"),
    "strongswan-legacy-modp1024": ("aes256-sha1-modp1024", "aes256-sha1"),
    "strongswan-psk-aescbc-sha256": ("aes256-sha256-x25519", "aes256-sha256"),
    "strongswan-psk-x25519": ("aes256gcm16-prfsha256-x25519", "aes256gcm16"),
}


def _hex(value: str | None) -> bytes:
    return bytes.fromhex(value or "")


class Scripted:
    """A RandomSource that plays back fixed bytes and insists they are all used."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def random_bytes(self, n: int) -> bytes:
        assert len(self.data) >= n, "protect asked for more random bytes than scripted"
        out, self.data = self.data[:n], self.data[n:]
        return out


@dataclass(frozen=True)
class Capture:
    name: str
    doc: dict[str, object]
    messages: tuple[Message, ...]
    ike: ChosenProposal
    prf: PrfSpec
    encr: CipherSpec | AeadSpec
    integ: IntegSpec | None

    @property
    def keys(self) -> dict[str, str | None]:
        return self.doc["ike_sa_keys"]  # type: ignore[return-value]

    @property
    def logged(self) -> IkeKeys:
        names = ("SK_d", "SK_ai", "SK_ar", "SK_ei", "SK_er", "SK_pi", "SK_pr")
        return IkeKeys(*(_hex(self.keys[n]) for n in names))

    def message_doc(self, index: int) -> dict[str, object]:
        return self.doc["ike_messages"][index]  # type: ignore[index, no-any-return]

    def protector(self, index: int) -> SkProtector:
        i_to_r, r_to_i = SkProtector.pair(self.encr, self.integ, self.logged, initiator=True)
        return i_to_r if self.message_doc(index)["direction"] == "i->r" else r_to_i


def _ike_message(entry: dict[str, object]) -> Message:
    raw = bytes.fromhex(str(entry["udp_payload_hex"]))
    if entry["non_esp_marker"]:
        assert raw[:4] == bytes(4)
        raw = raw[4:]
    return decode_message(raw)


def _sa(msg: Message) -> SecurityAssociation:
    sa = msg.find(SecurityAssociation)
    assert sa is not None
    return sa


@cache
def load(path: Path) -> Capture:
    doc = json.loads(path.read_text())
    messages = tuple(_ike_message(m) for m in doc["ike_messages"])
    offered, accepted = _sa(messages[0]).proposals, _sa(messages[1]).proposals
    assert len(accepted) == 1
    chosen = select([ProposalSpec.from_wire(accepted[0])], offered)
    assert chosen is not None
    assert chosen.encr is not None and chosen.prf is not None
    return Capture(
        name=path.stem,
        doc=doc,
        messages=messages,
        ike=chosen,
        prf=REGISTRY.prf(chosen.prf),
        encr=REGISTRY.encr(*chosen.encr),
        integ=None if chosen.integ in (None, 0) else REGISTRY.integ(chosen.integ),  # type: ignore[arg-type]
    )


@pytest.fixture(params=FILES, ids=[f.stem for f in FILES])
def cap(request: pytest.FixtureRequest) -> Capture:
    return load(request.param)


def _encrypted_messages() -> Iterator[tuple[Path, int]]:
    for path in FILES:
        for index, entry in enumerate(json.loads(path.read_text())["ike_messages"]):
            if "sk" in entry:
                yield path, index


ENCRYPTED = list(_encrypted_messages())
assert len(FILES) == 5 and len(ENCRYPTED) == 20 and len(CERT_FILES) == 1, "tests/captures changed"
ENCRYPTED_IDS = [f"{p.stem}#{i}" for p, i in ENCRYPTED]


def _inner(c: Capture, index: int) -> tuple[Payload, ...]:
    return c.protector(index).unprotect(c.messages[index])


# --- proposals ------------------------------------------------------------------------------


def _type_key(t: Transform) -> tuple[int, int]:
    return int(t.transform_type), int(t.transform_id)


def test_ike_proposal_maps_to_keywords_and_is_selected(cap: Capture) -> None:
    ike_text, _ = EXPECTED_PROPOSALS[cap.name]
    offered = _sa(cap.messages[0]).proposals
    accepted = _sa(cap.messages[1]).proposals[0]
    assert [format_proposal(ProposalSpec.from_wire(p)) for p in offered] == [ike_text]
    assert format_proposal(ProposalSpec.from_wire(accepted)) == ike_text
    # as a responder configured with the same keywords we would pick what strongSwan picked
    local = parse_proposals(ike_text, protocol=ProtocolId.IKE, allow_legacy="legacy" in cap.name)
    chosen = select(local, offered)
    assert chosen is not None
    # same transforms (strongSwan lists INTEG before PRF; the order carries no meaning)
    assert sorted(chosen.to_wire().transforms, key=_type_key) == sorted(accepted.transforms, key=_type_key)
    assert (chosen.number, chosen.spi) == (accepted.number, accepted.spi)
    assert str(chosen) == cap.doc["description"]["ike_proposal"]  # type: ignore[index]  # as strongSwan logs it


def test_esp_proposal_in_ike_auth_maps_and_is_selected(cap: Capture) -> None:
    _, esp_text = EXPECTED_PROPOSALS[cap.name]
    offered = _sa(cap.messages[2].with_payloads(_inner(cap, 2))).proposals
    accepted = _sa(cap.messages[3].with_payloads(_inner(cap, 3))).proposals[0]
    assert format_proposal(ProposalSpec.from_wire(accepted)) == esp_text
    local = parse_proposals(esp_text, protocol=ProtocolId.ESP, allow_legacy="legacy" in cap.name)
    chosen = select(local, offered, ignore_ke=True)
    assert chosen is not None
    assert sorted(chosen.to_wire(accepted.spi).transforms, key=_type_key) == sorted(
        accepted.transforms, key=_type_key
    )
    assert chosen.spi.hex() == cap.doc["child_sa"]["spi_initiator_inbound"]  # type: ignore[index]
    assert str(chosen) == cap.doc["description"]["esp_proposal"]  # type: ignore[index]


# --- key derivation -------------------------------------------------------------------------


def test_skeyseed(cap: Capture) -> None:
    k = cap.keys
    got = skeyseed(cap.prf, _hex(k["Ni"]), _hex(k["Nr"]), _hex(k["g_ir"]))
    assert got.hex() == k["SKEYSEED"]


def test_nonces_in_the_packets_are_the_logged_ones(cap: Capture) -> None:
    ni, nr = cap.messages[0].find(Nonce), cap.messages[1].find(Nonce)
    assert ni is not None and nr is not None
    assert (ni.data.hex(), nr.data.hex()) == (cap.keys["Ni"], cap.keys["Nr"])
    assert (cap.messages[1].spi_i.hex(), cap.messages[1].spi_r.hex()) == (cap.keys["SPIi"], cap.keys["SPIr"])


def test_every_sk_key(cap: Capture) -> None:
    k = cap.keys
    keys = derive_ike_keys(
        cap.prf,
        cap.encr,
        cap.integ,
        _hex(k["SKEYSEED"]),
        ni=_hex(k["Ni"]),
        nr=_hex(k["Nr"]),
        spi_i=_hex(k["SPIi"]),
        spi_r=_hex(k["SPIr"]),
    )
    for name in ("SK_d", "SK_ai", "SK_ar", "SK_ei", "SK_er", "SK_pi", "SK_pr"):
        assert getattr(keys, name.lower()).hex() == (k[name] or ""), name
    if isinstance(cap.encr, AeadSpec):
        assert keys.sk_ai == keys.sk_ar == b""
        assert len(keys.sk_ei) == cap.encr.key_len + 4  # the salt rides at the end


def test_child_sa_keys(cap: Capture) -> None:
    child: dict[str, str | None] = cap.doc["child_sa"]  # type: ignore[assignment]
    k = cap.keys
    assert child["keymat_seed_Ni_Nr"] == k["Ni"] + k["Nr"]  # type: ignore[operator]
    esp = select(
        parse_proposals(EXPECTED_PROPOSALS[cap.name][1], protocol=ProtocolId.ESP, allow_legacy=True),
        _sa(cap.messages[3].with_payloads(_inner(cap, 3))).proposals,
    )
    assert esp is not None and esp.encr is not None
    encr = REGISTRY.encr(*esp.encr)
    integ = None if esp.integ is None else REGISTRY.integ(esp.integ)
    keys = derive_child_keys(cap.prf, _hex(k["SK_d"]), encr, integ, ni=_hex(k["Ni"]), nr=_hex(k["Nr"]))
    assert keys.encr_i.hex() == child["encryption_initiator_key"]
    assert keys.integ_i.hex() == (child["integrity_initiator_key"] or "")
    assert keys.encr_r.hex() == child["encryption_responder_key"]
    assert keys.integ_r.hex() == (child["integrity_responder_key"] or "")


# --- SK payload protection --------------------------------------------------------------------


@pytest.mark.parametrize(("path", "index"), ENCRYPTED, ids=ENCRYPTED_IDS)
def test_unprotect_decrypts_to_the_logged_plaintext(path: Path, index: int) -> None:
    c = load(path)
    sk: dict[str, object] = c.message_doc(index)["sk"]  # type: ignore[assignment]
    inner = _inner(c, index)
    first, plaintext = encode_payload_chain(inner)
    assert plaintext.hex() == sk["decrypted_payloads_hex"]
    assert [int(p.payload_type) for p in inner] == [p["type"] for p in sk["inner_payloads"]]  # type: ignore[attr-defined]
    assert first == c.messages[index].payloads[-1].inner_type  # type: ignore[attr-defined]


@pytest.mark.parametrize(("path", "index"), ENCRYPTED, ids=ENCRYPTED_IDS)
@pytest.mark.parametrize("where", ["header", "iv", "ciphertext", "icv"])
def test_flipped_bit_raises_integrity_error(path: Path, index: int, where: str) -> None:
    c = load(path)
    msg = c.messages[index]
    raw = bytearray(msg.raw)
    iv_len = c.encr.iv_len
    sk_data_at = len(raw) - len(msg.payloads[-1].data)  # type: ignore[attr-defined]
    position = {
        "header": 17,  # the minor version nibble: AAD (AEAD) or covered by the ICV
        "iv": sk_data_at + 1,
        "ciphertext": sk_data_at + iv_len,
        "icv": len(raw) - 1,
    }[where]
    raw[position] ^= 0x04
    tampered = decode_message(bytes(raw))
    with pytest.raises(IntegrityError):
        c.protector(index).unprotect(tampered)


@pytest.mark.parametrize(("path", "index"), ENCRYPTED, ids=ENCRYPTED_IDS)
def test_reprotect_reproduces_the_captured_bytes(path: Path, index: int) -> None:
    c = load(path)
    msg = c.messages[index]
    sk: dict[str, object] = c.message_doc(index)["sk"]  # type: ignore[assignment]
    iv = bytes.fromhex(str(sk["iv_hex"]))
    padding = b""
    if isinstance(c.encr, CipherSpec):
        # strongSwan pads CBC with random bytes: recover them from the capture with the raw cipher
        key = c.logged.sk_ei if c.message_doc(index)["direction"] == "i->r" else c.logged.sk_er
        assert c.integ is not None
        data = msg.payloads[-1].data  # type: ignore[attr-defined]
        padded = c.encr.new(key).decrypt(iv, data[len(iv) : len(data) - c.integ.icv_len])
        assert padded[-1] == sk["pad_length"]
        padding = padded[len(padded) - 1 - padded[-1] : -1]
    else:
        assert sk["pad_length"] == 0  # strongSwan sends no padding with AEAD; nor do we
    rng = Scripted(iv + padding)
    again = c.protector(index).protect(msg.with_payloads(()), _inner(c, index), rng)
    assert again == msg.raw
    assert rng.data == b""


# --- AUTH payloads ------------------------------------------------------------------------------


def _auth_inputs(c: Capture, side: str) -> tuple[bytes, Authentication]:
    """(signed octets we compute, the AUTH payload strongSwan sent) for ``side``."""
    initiator = side == "initiator"
    own_init, peer_init = (c.messages[0], c.messages[1]) if initiator else (c.messages[1], c.messages[0])
    auth_msg = c.messages[2] if initiator else c.messages[3]
    inner = auth_msg.with_payloads(_inner(c, 2 if initiator else 3))
    id_type = PayloadType.IDi if initiator else PayloadType.IDr
    ident = next(p for p in inner.find_all(Identification) if p.payload_type == id_type)
    peer_nonce = peer_init.find(Nonce)
    auth = inner.find(Authentication)
    assert peer_nonce is not None and auth is not None
    sk_p = c.logged.sk_pi if initiator else c.logged.sk_pr
    octets = auth_octets(c.prf, sk_p, own_init.raw, peer_nonce.data, ident.encode_body())
    return octets, auth


@pytest.mark.parametrize("side", ["initiator", "responder"])
def test_auth_signed_octets(cap: Capture, side: str) -> None:
    octets, auth = _auth_inputs(cap, side)
    expected: dict[str, object] = cap.doc["authentication"]["auth_payloads"][side]  # type: ignore[index]
    assert octets.hex() == expected["signed_octets_hex"]
    assert auth.method == expected["auth_method"]


@pytest.mark.parametrize("path", PSK_FILES, ids=[f.stem for f in PSK_FILES])
@pytest.mark.parametrize("side", ["initiator", "responder"])
def test_psk_auth_payloads(path: Path, side: str) -> None:
    cap = load(path)
    authn: dict[str, str] = cap.doc["authentication"]  # type: ignore[assignment]
    octets, auth = _auth_inputs(cap, side)
    psk = bytes.fromhex(authn["psk_hex"])
    assert psk == authn["psk"].encode()
    assert auth.method == AuthMethod.SHARED_KEY_MESSAGE_INTEGRITY_CODE
    assert psk_auth(cap.prf, psk, octets) == auth.data
    assert verify_psk_auth(cap.prf, psk, octets, auth.data)
    assert not verify_psk_auth(cap.prf, psk + b"x", octets, auth.data)
    assert not verify_psk_auth(cap.prf, psk, octets[:-1], auth.data)


@pytest.mark.parametrize("path", CERT_FILES, ids=[f.stem for f in CERT_FILES])
@pytest.mark.parametrize("side", ["initiator", "responder"])
def test_certificate_auth_payloads(path: Path, side: str) -> None:
    cap = load(path)
    authn: dict[str, str] = cap.doc["authentication"]  # type: ignore[assignment]
    octets, auth = _auth_inputs(cap, side)
    cert = x509.load_pem_x509_certificate((CAPTURES / authn[f"{side}_cert_pem"]).read_bytes())
    key = cert.public_key()
    assert auth.method == AuthMethod.DIGITAL_SIGNATURE
    verify_auth(key, auth.method, auth.data, octets, SIGNATURE_HASHES)  # type: ignore[arg-type]
    with pytest.raises(AuthenticationFailed):
        verify_auth(key, auth.method, auth.data, octets + b"\x00", SIGNATURE_HASHES)  # type: ignore[arg-type]
    other = "responder" if side == "initiator" else "initiator"
    other_key = x509.load_pem_x509_certificate(
        (CAPTURES / authn[f"{other}_cert_pem"]).read_bytes()
    ).public_key()
    with pytest.raises(AuthenticationFailed):
        verify_auth(other_key, auth.method, auth.data, octets, SIGNATURE_HASHES)  # type: ignore[arg-type]
