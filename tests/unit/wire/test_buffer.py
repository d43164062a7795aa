from __future__ import annotations

import pytest

from pyipsec.errors import DecodeError
from pyipsec.wire.buffer import Reader, Writer


def test_reader_reads_big_endian_and_tracks_offset() -> None:
    r = Reader(bytes.fromhex("01 0203 04050607 08090a0b0c0d0e0f ff"), base=10)
    assert r.u8() == 1
    assert r.u16() == 0x0203
    assert r.u32() == 0x04050607
    assert r.u64() == 0x08090A0B0C0D0E0F
    assert r.offset == 25
    assert r.rest() == b"\xff"
    assert r.at_end()


def test_short_read_raises_decode_error_with_offset() -> None:
    r = Reader(b"\x00\x01\x02", base=100)
    r.u8()
    with pytest.raises(DecodeError) as exc:
        r.u32()
    assert exc.value.offset == 101


def test_sub_reader_is_bounded() -> None:
    r = Reader(b"\x00\x01\x02\x03")
    sub = r.sub(2)
    assert sub.u16() == 1
    with pytest.raises(DecodeError):
        sub.u8()
    assert r.u16() == 0x0203
    with pytest.raises(DecodeError):
        Reader(b"\x00").sub(2)


def test_expect_end_rejects_trailing_bytes() -> None:
    r = Reader(b"\x00\x01")
    r.u8()
    with pytest.raises(DecodeError):
        r.expect_end()


def test_writer_patches_lengths() -> None:
    w = Writer().u8(1).u16(0).u32(7).write(b"ab")
    w.patch_u16(1, len(w))
    assert w.getvalue() == bytes.fromhex("01 0009 00000007 6162")
