"""Decoders raise only DecodeError: random input and mutations of the captured messages.

Whatever bytes arrive, ``decode_message`` / ``decode_payload_chain`` either return a model
that re-encodes to something decoding to the same model, or raise ``DecodeError`` (of
which ``InvalidMajorVersion`` and ``UnsupportedCriticalPayload`` are subclasses) — never
IndexError, struct.error, ValueError, UnicodeDecodeError or anything else.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyipsec.errors import DecodeError
from pyipsec.iana.ikev2 import PayloadType
from pyipsec.wire.buffer import Reader
from pyipsec.wire.message import (
    Message,
    decode_message,
    decode_payload_chain,
    encode_message,
    encode_payload_chain,
)
from pyipsec.wire.payloads.auth import Authentication
from pyipsec.wire.payloads.base import registered_types
from pyipsec.wire.payloads.cert import Certificate, CertificateRequest
from pyipsec.wire.payloads.delete import Delete
from pyipsec.wire.payloads.ident import Identification, dn_text
from pyipsec.wire.payloads.ke import KeyExchange
from pyipsec.wire.payloads.nonce import Nonce
from pyipsec.wire.payloads.sa import SecurityAssociation
from pyipsec.wire.payloads.sk import EncryptedPayload
from pyipsec.wire.payloads.vendor import VendorId

CAPTURES = Path(__file__).resolve().parents[1] / "captures"


def _load() -> tuple[list[bytes], list[tuple[PayloadType, bytes]]]:
    messages: list[bytes] = []
    chains: list[tuple[PayloadType, bytes]] = []
    for path in sorted(CAPTURES.glob("*.json")):
        for m in json.loads(path.read_text())["ike_messages"]:
            raw = bytes.fromhex(m["udp_payload_hex"])
            raw = raw[4:] if m["non_esp_marker"] else raw
            messages.append(raw)
            if m.get("sk"):
                sk = decode_message(raw).payloads[-1]
                assert isinstance(sk, EncryptedPayload)
                chains.append((sk.inner_type, bytes.fromhex(m["sk"]["decrypted_payloads_hex"])))
    return messages, chains


MESSAGES, CHAINS = _load()


def check_message(data: bytes) -> None:
    try:
        msg = decode_message(data)
    except DecodeError:
        return
    again = decode_message(encode_message(msg))
    assert again == msg


def check_chain(first: PayloadType, data: bytes) -> None:
    try:
        payloads = decode_payload_chain(first, data)
    except DecodeError:
        return
    first2, data2 = encode_payload_chain(payloads)
    assert decode_payload_chain(first2, data2) == payloads


def with_length(header: bytes, body: bytes) -> bytes:
    return header[:24] + (28 + len(body)).to_bytes(4, "big") + body


def test_captures_loaded() -> None:
    assert len(MESSAGES) == 30 and len(CHAINS) == 20


@given(st.binary(max_size=400))
def test_random_bytes(data: bytes) -> None:
    check_message(data)


@given(
    st.binary(min_size=28, max_size=28),
    st.sampled_from([*sorted(registered_types()), 46, 53, 0, 99]),
    st.binary(max_size=400),
)
def test_random_chain_behind_a_valid_header(header: bytes, first: int, body: bytes) -> None:
    # Valid version and Length, so decoding reaches the payload chain.
    header = header[:16] + bytes([first, 0x20]) + header[18:]
    check_message(with_length(header, body))


@given(st.sampled_from([*sorted(registered_types()), 0, 46, 53, 99]), st.binary(max_size=400))
def test_random_bare_chain(first: int, data: bytes) -> None:
    check_chain(PayloadType(first), data)


@pytest.mark.parametrize("index", range(len(MESSAGES)))
def test_every_truncation_of_captured_messages(index: int) -> None:
    raw = MESSAGES[index]
    for n in range(len(raw)):
        with pytest.raises(DecodeError):
            decode_message(raw[:n])
        if n >= 28:  # with the header Length fixed, the chain itself is cut short
            fixed = with_length(raw, raw[28:n])
            check_message(fixed)


@pytest.mark.parametrize("index", range(len(CHAINS)))
def test_every_truncation_of_decrypted_chains(index: int) -> None:
    first, data = CHAINS[index]
    for n in range(len(data)):
        with pytest.raises(DecodeError):
            decode_payload_chain(first, data[:n])


@given(st.sampled_from(MESSAGES), st.data())
def test_single_byte_mutations_of_captured_messages(raw: bytes, data: st.DataObject) -> None:
    pos = data.draw(st.integers(0, len(raw) - 1))
    value = data.draw(st.integers(0, 255))
    check_message(raw[:pos] + bytes([value]) + raw[pos + 1 :])


@given(st.sampled_from(CHAINS), st.data())
def test_single_byte_mutations_of_decrypted_chains(
    chain: tuple[PayloadType, bytes], data: st.DataObject
) -> None:
    first, body = chain
    if not body:
        return
    pos = data.draw(st.integers(0, len(body) - 1))
    value = data.draw(st.integers(0, 255))
    check_chain(first, body[:pos] + bytes([value]) + body[pos + 1 :])


@given(st.sampled_from(MESSAGES), st.data())
def test_insertions_and_deletions_with_fixed_length(raw: bytes, data: st.DataObject) -> None:
    pos = data.draw(st.integers(28, len(raw)))
    if data.draw(st.booleans()) or pos == len(raw):
        body = raw[28:pos] + data.draw(st.binary(min_size=1, max_size=8)) + raw[pos:]
    else:
        body = raw[28:pos] + raw[pos + data.draw(st.integers(1, 8)) :]
    check_message(with_length(raw, body))


def test_exhaustive_single_byte_mutations_of_one_sa_payload() -> None:
    # The SA payload is the most structured body: try every value at every position.
    raw = MESSAGES[0]
    msg: Message = decode_message(raw)
    sa = msg.find(SecurityAssociation)
    assert sa is not None
    body = sa.encode_body()
    for pos in range(len(body)):
        for value in range(256):
            mutated = body[:pos] + bytes([value]) + body[pos + 1 :]
            with contextlib.suppress(DecodeError):
                SecurityAssociation.decode_body(PayloadType.SA, Reader(mutated))


# Part A's decoders, called directly (without the message codec's ValueError guard).
DIRECT: list[tuple[PayloadType, type[Any]]] = [
    (PayloadType.SA, SecurityAssociation),
    (PayloadType.KE, KeyExchange),
    (PayloadType.IDi, Identification),
    (PayloadType.IDr, Identification),
    (PayloadType.CERT, Certificate),
    (PayloadType.CERTREQ, CertificateRequest),
    (PayloadType.AUTH, Authentication),
    (PayloadType.NONCE, Nonce),
    (PayloadType.V, VendorId),
    (PayloadType.D, Delete),
]


@given(st.sampled_from(DIRECT), st.binary(max_size=300))
def test_part_a_decoders_raise_only_decode_error(entry: tuple[PayloadType, type[Any]], data: bytes) -> None:
    ptype, cls = entry
    try:
        p = cls.decode_body(ptype, Reader(data))
    except DecodeError:
        return
    assert cls.decode_body(ptype, Reader(p.encode_body())) == p


@given(st.binary(max_size=200))
def test_dn_text_raises_only_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        dn_text(data)
    str(Identification(PayloadType.IDi, 9, data=data))  # type: ignore[arg-type]
