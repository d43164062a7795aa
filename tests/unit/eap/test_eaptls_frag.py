"""EAP-TLS framing and fragmentation (RFC 5216 §2.1.5, §3.1) on their own."""

from __future__ import annotations

import pytest

from pyipsec.ike.eap.tls_frag import (
    ACK,
    FLAG_L,
    FLAG_M,
    FLAG_S,
    EapTlsFrame,
    Fragmenter,
    FragmentError,
    Reassembler,
)


def test_frame_encoding() -> None:
    assert ACK.encode() == b"\x00" and ACK.is_ack
    assert EapTlsFrame(FLAG_S).encode() == b"\x20"
    assert EapTlsFrame(FLAG_M, 300, b"ab").encode() == b"\xc0\x00\x00\x01\x2cab"
    assert EapTlsFrame.decode(b"\xc0\x00\x00\x01\x2cab") == EapTlsFrame(FLAG_M, 300, b"ab")
    assert EapTlsFrame.decode(b"\x1f") == ACK  # reserved bits are ignored on receipt


@pytest.mark.parametrize("data", [b"", b"\x80", b"\x80\x00\x00\x01"])
def test_short_frames(data: bytes) -> None:
    with pytest.raises(FragmentError):
        EapTlsFrame.decode(data)


@pytest.mark.parametrize(("size", "total"), [(64, 1), (64, 64), (64, 65), (100, 1000), (1024, 3000)])
def test_fragmenter_and_reassembler_round_trip(size: int, total: int) -> None:
    flight = bytes(range(256)) * (total // 256) + bytes(total % 256)
    out = Fragmenter(flight, size)
    back = Reassembler()
    frames = []
    result = None
    while not out.done:
        frame = out.next_frame()
        frames.append(frame)
        result = back.add(EapTlsFrame.decode(frame.encode()))
    assert result == flight
    assert all(len(f.data) <= size for f in frames)
    assert [f.more for f in frames] == [True] * (len(frames) - 1) + [False]
    if len(frames) > 1:
        assert frames[0].tls_length == total and all(f.tls_length is None for f in frames[1:])
    else:
        assert frames[0].tls_length is None
    assert not back.in_progress


def test_reassembler_accepts_a_first_fragment_without_length() -> None:
    r = Reassembler()
    assert r.add(EapTlsFrame(FLAG_M, None, b"abc")) is None
    assert r.add(EapTlsFrame(0, None, b"def")) == b"abcdef"


def test_reassembler_limits() -> None:
    r = Reassembler(max_len=100, max_fragments=3)
    with pytest.raises(FragmentError, match="exceeds the limit"):
        r.add(EapTlsFrame(FLAG_M | FLAG_L, 101, b"x"))
    r = Reassembler(max_len=100, max_fragments=3)
    r.add(EapTlsFrame(FLAG_M, None, b"x" * 60))
    with pytest.raises(FragmentError, match="exceeds the limit"):
        r.add(EapTlsFrame(FLAG_M, None, b"x" * 60))
    r = Reassembler(max_len=100, max_fragments=3)
    for _ in range(3):
        r.add(EapTlsFrame(FLAG_M, None, b"x"))
    with pytest.raises(FragmentError, match="more than 3 fragments"):
        r.add(EapTlsFrame(0, None, b"x"))
