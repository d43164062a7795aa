"""ReplayWindow (RFC 4303 §3.4.3, Appendix A2) and SequenceCounter (RFC 4303 §3.3.3)."""

from __future__ import annotations

import pytest

from pyipsec.esp.replay import ReplayWindow, SeqExhausting, SequenceCounter, SequenceExhausted

M32 = (1 << 32) - 1
M64 = (1 << 64) - 1


def _accept(window: ReplayWindow, seq_low: int) -> int | None:
    """check + commit, as after a good ICV."""
    seq = window.check(seq_low)
    if seq is not None:
        assert window.commit(seq)
    return seq


# --- without ESN ----------------------------------------------------------------------------


def test_check_does_not_change_the_window() -> None:
    w = ReplayWindow(64)
    assert w.check(5) == 5
    assert w.check(5) == 5
    assert w.top == 0
    assert not w.seen(5)


def test_in_order_duplicates_and_zero() -> None:
    w = ReplayWindow(64)
    assert w.check(0) is None
    for s in range(1, 10):
        assert _accept(w, s) == s
        assert w.check(s) is None
    assert w.top == 9
    assert w.check(0) is None


def test_window_edges() -> None:
    w = ReplayWindow(64)
    _accept(w, 1000)
    assert w.check(1000 - 63) == 937  # the oldest number the window holds
    assert w.check(1000 - 64) is None  # just left of it
    assert _accept(w, 937) == 937
    assert w.check(937) is None
    assert w.check(M32) == M32  # anything ahead is fine
    assert not w.commit(936)
    assert w.commit(999) and not w.commit(999)


def test_sliding_keeps_the_bits_that_stay_in_the_window() -> None:
    w = ReplayWindow(32)
    for s in (10, 12, 14):
        _accept(w, s)
    _accept(w, 40)  # the window is now 9 .. 40: 10, 12 and 14 stay
    assert w.seen(10) and w.seen(12) and w.seen(14) and w.seen(40)
    assert not w.seen(11) and w.check(11) == 11
    _accept(w, 43)  # bottom 12: 10 and 11 gone
    assert w.check(10) is None and w.check(11) is None
    assert w.check(12) is None and w.check(13) == 13


def test_a_jump_beyond_the_window_clears_it() -> None:
    w = ReplayWindow(32)
    for s in range(1, 33):
        _accept(w, s)
    _accept(w, 1_000_000)
    assert w.check(1_000_000 - 31) == 1_000_000 - 31
    assert w.check(1_000_000 - 32) is None
    assert not w.seen(32)


def test_commit_refuses_numbers_that_became_replays_in_the_meantime() -> None:
    """Two copies of one packet in a batch both pass check(); only the first commit wins."""
    w = ReplayWindow(32)
    a = w.check(7)
    b = w.check(7)
    assert a == b == 7
    assert w.commit(7)
    assert not w.commit(7)
    c = w.check(8)
    assert c == 8
    assert w.commit(100)  # a later packet of the batch moved the window past 8
    assert not w.commit(8)
    assert not w.seen(8)


def test_minimum_window_size() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        ReplayWindow(31)
    assert ReplayWindow(32).size == 32
    assert "top=0" in repr(ReplayWindow())


# --- ESN (RFC 4303 Appendix A2.2) -------------------------------------------------------------


def test_esn_starts_in_epoch_zero() -> None:
    w = ReplayWindow(64, esn=True)
    assert w.check(0) is None  # 0 is never a valid sequence number
    assert w.check(1) == 1
    # Case B from the start: the window bottom (1 - 64) lies in "epoch -1", so low halves at or
    # above its low part 2^32 - 63 would be epoch -1 and are refused ...
    assert w.check(M32) is None
    assert w.check(M32 - 62) is None
    assert w.check(M32 - 63) == M32 - 63  # ... and the ones below it are ahead in epoch 0
    _accept(w, 10)
    # Case B (window spans the boundary below epoch 0): low halves near 2^32 would be epoch -1
    assert w.check(M32 - 10) is None
    assert w.check(M32 - 60) == M32 - 60  # below the window bottom's low half: ahead


def test_esn_wrap_of_the_low_32_bits() -> None:
    w = ReplayWindow(64, esn=True)
    assert w.commit(M32 - 5)  # top = 2^32 - 6, Case A
    assert w.check(M32) == M32
    assert w.check(3) == (1 << 32) + 3  # below the window bottom: the next epoch
    assert w.check(0) == 1 << 32  # low half 0 is valid in epoch 1
    assert _accept(w, 0) == 1 << 32
    assert w.top == 1 << 32
    # now Case B: the window (2^32 - 63 .. 2^32) spans the boundary
    assert w.check(M32 - 5) is None  # seen before the wrap
    assert w.check(M32 - 4) == M32 - 4  # from just before the wrap, arriving after it
    assert _accept(w, M32 - 4) == M32 - 4
    assert w.check(M32 - 62) == M32 - 62  # the bottom of the window
    # below the bottom's low half: taken as ahead in epoch 1 (the ICV then decides)
    assert w.check(M32 - 63) == (1 << 33) - 64
    assert w.check(M32 - 64) == (1 << 33) - 65
    assert w.check(5) == (1 << 32) + 5
    assert w.top == 1 << 32


def test_esn_window_spanning_the_boundary_after_a_jump() -> None:
    w = ReplayWindow(32, esn=True)
    assert w.commit(M32 - 40)
    assert _accept(w, M32) == M32
    assert _accept(w, 2) == (1 << 32) + 2  # epoch 1
    assert w.top == (1 << 32) + 2
    assert w.seen(M32)  # still in the window across the boundary
    assert w.check(M32) is None
    assert w.check(M32 - 1) == M32 - 1
    assert w.check(M32 - 28) == M32 - 28  # bottom = 2^32 + 2 - 31
    assert w.check(M32 - 29) == (1 << 32) + M32 - 29  # below it: epoch 1, ahead


def test_esn_last_epoch_cannot_overflow() -> None:
    w = ReplayWindow(64, esn=True)
    top = M64 - 3
    assert w.commit(top)
    assert w.check(M32) == M64  # the last sequence number
    assert w.check(M32 - 3) is None  # that is top itself
    assert w.check(M32 - 2) == M64 - 2
    assert w.check(5) is None  # would be epoch 2^32
    assert _accept(w, M32) == M64


def test_esn_high_half_from_a_far_window() -> None:
    w = ReplayWindow(1024, esn=True)
    top = (0x8765_4321 << 32) | 0x10
    w.commit(top)
    assert w.check(0x11) == top + 1
    assert w.check(0) == 0x8765_4321 << 32
    assert w.check(M32 - 1000) == (0x8765_4320 << 32) | (M32 - 1000)  # in the window, epoch before
    # the window bottom is top - 1023, low half 2^32 - 1007: below that, the same epoch as top
    assert w.check(M32 - 1006) == (0x8765_4320 << 32) | (M32 - 1006)
    assert w.check(M32 - 1007) == (0x8765_4321 << 32) | (M32 - 1007)
    assert w.check(0x8000_0000) == (0x8765_4321 << 32) | 0x8000_0000


# --- SequenceCounter --------------------------------------------------------------------------


def test_counter_starts_at_one() -> None:
    c = SequenceCounter()
    assert c.last == 0
    assert [c.next() for _ in range(3)] == [1, 2, 3]
    assert c.last == 3 and not c.exhausting
    assert c.poll() is None
    assert c.soft_limit == M32 - (M32 >> 3)


@pytest.mark.parametrize(("esn", "limit"), [(False, M32), (True, M64)])
def test_counter_never_wraps(esn: bool, limit: int) -> None:
    c = SequenceCounter(esn, soft_limit=limit - 2, spi=0xABC)
    c.skip_to(limit - 4)
    assert c.next() == limit - 3
    assert c.poll() is None
    assert c.next() == limit - 2
    assert c.exhausting
    assert c.poll() == SeqExhausting(spi=0xABC, seq=limit - 2, limit=limit)
    assert c.poll() is None
    assert [c.next(), c.next()] == [limit - 1, limit]
    for _ in range(3):
        with pytest.raises(SequenceExhausted):
            c.next()
    assert c.last == limit
    assert c.poll() is None


def test_counter_without_esn_stops_before_two_to_the_32() -> None:
    c = SequenceCounter(esn=False)
    c.skip_to(M32 - 1)
    assert c.next() == M32
    with pytest.raises(SequenceExhausted):
        c.next()
    assert c.poll() is not None  # the soft limit was crossed on the way


def test_counter_with_esn_runs_past_two_to_the_32() -> None:
    c = SequenceCounter(esn=True)
    c.skip_to(M32)
    assert c.next() == 1 << 32
    assert not c.exhausting


def test_counter_arguments() -> None:
    with pytest.raises(ValueError, match="soft_limit"):
        SequenceCounter(soft_limit=0)
    with pytest.raises(ValueError, match="soft_limit"):
        SequenceCounter(soft_limit=1 << 32)
    c = SequenceCounter()
    c.skip_to(10)
    with pytest.raises(ValueError, match="cannot move"):
        c.skip_to(9)
    with pytest.raises(ValueError, match="cannot move"):
        c.skip_to(1 << 32)
    assert "last=10" in repr(c)
