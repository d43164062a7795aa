"""IKE fragment reassembly (RFC 7383 §2.6): order, duplicates, replacement, limits."""

from __future__ import annotations

import pytest

from pyipsec.crypto.rand import SeededRandom
from pyipsec.crypto.registry import REGISTRY
from pyipsec.errors import DecodeError, IntegrityError
from pyipsec.iana.ikev2 import ExchangeType
from pyipsec.iana.transforms import EncrId
from pyipsec.ike.fragment import Reassembler
from pyipsec.ike.protect import SkProtector
from pyipsec.wire.message import Message, decode_message
from pyipsec.wire.payloads.vendor import VendorId

KEY = bytes(range(36))
HEADER = Message(
    b"\x01" * 8,
    b"\x02" * 8,
    exchange_type=ExchangeType.IKE_AUTH,
    message_id=1,
    is_initiator=True,
    is_response=False,
)
INNER = [VendorId(bytes([n]) * 60) for n in range(10)]


def fragments(size: int = 80) -> list[Message]:
    prot = SkProtector(REGISTRY.encr(EncrId.ENCR_AES_GCM_16, 256), None, KEY)
    return [
        decode_message(f)
        for f in prot.protect_fragments(HEADER, INNER, SeededRandom(1), max_message_len=size)
    ]


def opener() -> SkProtector:
    return SkProtector(REGISTRY.encr(EncrId.ENCR_AES_GCM_16, 256), None, KEY)


def test_out_of_order_fragments_reassemble_once_complete() -> None:
    frags = fragments()
    assert len(frags) > 16
    r, prot = Reassembler(), opener()
    results = [r.add(1, prot.unprotect_fragment(m)) for m in reversed(frags)]
    assert all(x is None for x in results[:-1])
    assert list(results[-1] or ()) == INNER


def test_duplicates_are_ignored() -> None:
    frags = fragments()
    r, prot = Reassembler(), opener()
    assert r.add(1, prot.unprotect_fragment(frags[0])) is None
    assert r.add(1, prot.unprotect_fragment(frags[0])) is None
    out = None
    for m in frags[1:]:
        out = r.add(1, prot.unprotect_fragment(m))
    assert list(out or ()) == INNER


def test_a_newer_message_id_starts_over() -> None:
    frags = fragments()
    r, prot = Reassembler(), opener()
    r.add(0, prot.unprotect_fragment(frags[0]))
    out = None
    for m in frags:
        out = r.add(1, prot.unprotect_fragment(m))
    assert list(out or ()) == INNER


def test_forged_fragment_fails_integrity_before_it_is_kept() -> None:
    raw = bytearray(fragments()[0].raw)
    raw[-1] ^= 1
    with pytest.raises(IntegrityError):
        opener().unprotect_fragment(decode_message(bytes(raw)))


def test_limits_bound_what_a_peer_can_make_us_hold() -> None:
    prot = opener()
    frags = fragments()
    with pytest.raises(DecodeError):
        Reassembler(max_fragments=4).add(1, prot.unprotect_fragment(frags[0]))
    r = Reassembler(max_bytes=100)
    with pytest.raises(DecodeError):
        for m in frags:
            r.add(1, prot.unprotect_fragment(m))
