"""ReplayWindow against a set model (RFC 4303 §3.4.3; ESN inference of Appendix A2.2).

The model keeps every authenticated sequence number in a set. A packet is accepted iff its
number is not in the set and lies within the window (top - W < seq, seq >= 1). With ESN, the
number the receiver works with is inferred from the low 32 bits: the unique value congruent to
them in [bottom, bottom + 2^32) where bottom = top - W + 1; when that is not the number the
sender used, the ICV fails and nothing is committed.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from pyipsec.esp.replay import ReplayWindow

M32 = (1 << 32) - 1
M64 = (1 << 64) - 1
SIZES = st.sampled_from([32, 64, 100, 1024])


class WindowModel:
    def __init__(self, size: int, esn: bool) -> None:
        self.size = size
        self.esn = esn
        self.top = 0
        self.seen: set[int] = set()

    def infer(self, low: int) -> int:
        if not self.esn:
            return low
        bottom = self.top - self.size + 1
        return bottom + ((low - bottom) % (1 << 32))

    def expected_check(self, low: int) -> int | None:
        seq = self.infer(low)
        if seq < 1 or seq > (M64 if self.esn else M32):
            return None
        if seq > self.top:
            return seq
        if self.top - seq >= self.size or seq in self.seen:
            return None
        return seq

    def commit(self, seq: int) -> None:
        self.seen.add(seq)
        self.top = max(self.top, seq)


# --- a plain property: random arrival orders --------------------------------------------------


@given(
    size=SIZES,
    arrivals=st.lists(
        st.one_of(st.integers(1, 200), st.integers(1, M32), st.integers(0, 3000)), min_size=1, max_size=300
    ),
)
def test_accepts_exactly_what_the_set_model_accepts(size: int, arrivals: list[int]) -> None:
    window = ReplayWindow(size)
    model = WindowModel(size, esn=False)
    for seq in arrivals:
        expected = model.expected_check(seq)
        assert window.check(seq) == expected
        if expected is not None:
            assert window.commit(expected)
            model.commit(expected)
        assert window.top == model.top
    for seq in {*arrivals, *range(max(0, model.top - size - 2), min(model.top + 3, M32 + 1))}:
        in_window = model.top - size < seq <= model.top
        assert window.seen(seq) == (in_window and seq in model.seen)
        assert window.check(seq) == model.expected_check(seq)


# --- stateful: one sender, a lossy reordering duplicating path, with and without ESN --------


class ReplayMachine(RuleBasedStateMachine):
    """The sender's true sequence numbers travel with their packets; the ICV is modelled as
    "the inferred number equals the true one"."""

    def __init__(self) -> None:
        super().__init__()
        self.window = ReplayWindow()
        self.model = WindowModel(1024, esn=False)
        self.sent: list[int] = []
        self.next_seq = 1

    @initialize(
        size=SIZES, esn=st.booleans(), start=st.sampled_from([0, M32 - 200, M32 - 5, 7 << 32, M64 - 500])
    )
    def setup(self, size: int, esn: bool, start: int) -> None:
        if not esn:
            start = min(start, M32 - 600)
        self.window = ReplayWindow(size, esn=esn)
        self.model = WindowModel(size, esn=esn)
        if start:
            assert self.window.commit(start)
            self.model.commit(start)
        self.next_seq = start + 1
        self.limit = M64 if esn else M32

    def _deliver(self, true_seq: int) -> None:
        low = true_seq & M32
        expected = self.model.expected_check(low)
        got = self.window.check(low)
        assert got == expected
        if got is not None and got == true_seq:  # the ICV verifies: commit
            assert self.window.commit(got)
            self.model.commit(got)
        elif got is not None:  # wrong epoch: the ICV fails, nothing is committed
            assert got != true_seq

    @precondition(lambda self: self.next_seq <= self.limit)
    @rule(skip=st.one_of(st.integers(0, 3), st.integers(0, 2000), st.integers(0, 1 << 33)))
    def send(self, skip: int) -> None:
        """The sender sends one packet (``skip`` lost before it); it may arrive now or later."""
        seq = min(self.next_seq + skip, self.limit)
        self.sent.append(seq)
        self.next_seq = seq + 1
        self._deliver(seq)

    @precondition(lambda self: self.next_seq <= self.limit)
    @rule(skip=st.integers(0, 50))
    def send_delayed(self, skip: int) -> None:
        """A packet that is held back: it arrives through ``deliver_late``."""
        seq = min(self.next_seq + skip, self.limit)
        self.sent.append(seq)
        self.next_seq = seq + 1

    @precondition(lambda self: bool(self.sent))
    @rule(data=st.data())
    def deliver_late(self, data: st.DataObject) -> None:
        """A copy of an earlier packet: reordered, or replayed."""
        self._deliver(data.draw(st.sampled_from(self.sent[-3000:])))

    @precondition(lambda self: self.next_seq <= self.limit)
    @rule(over=st.integers(-2, 2))
    def jump_to_the_window_edge(self, over: int) -> None:
        """A packet exactly about one window ahead of the top (the bitmap shift edge cases)."""
        seq = min(max(self.next_seq, self.model.top + self.model.size + over), self.limit)
        self.sent.append(seq)
        self.next_seq = seq + 1
        self._deliver(seq)

    @rule(delta=st.integers(-3, 3), edge=st.sampled_from(["bottom", "top", "epoch"]))
    def probe_edges(self, delta: int, edge: str) -> None:
        """check() of low halves at the window bottom, the top and the 2^32 boundaries."""
        top = self.model.top
        base = {"bottom": top - self.model.size + 1, "top": top, "epoch": (top >> 32) << 32}[edge]
        low = (base + delta) & M32
        assert self.window.check(low) == self.model.expected_check(low)

    @precondition(lambda self: len(self.sent) >= 2)
    @rule(data=st.data())
    def batch(self, data: st.DataObject) -> None:
        """Several packets checked first, then committed (a data-plane batch): a commit refuses a
        number that became a duplicate or too old since its check."""
        picks = data.draw(st.lists(st.sampled_from(self.sent[-3000:]), min_size=2, max_size=5))
        if self.next_seq <= self.limit and data.draw(st.booleans()):
            jump = min(self.next_seq + self.model.size + data.draw(st.integers(-3, 3)), self.limit)
            jump = max(jump, self.next_seq)
            self.sent.append(jump)
            self.next_seq = jump + 1
            picks.insert(data.draw(st.integers(0, len(picks))), jump)
        checked = [(true_seq, self.window.check(true_seq & M32)) for true_seq in picks]
        for true_seq, got in checked:
            if got is None or got != true_seq:
                continue
            model = self.model
            still_ok = got not in model.seen and (got > model.top or model.top - got < model.size)
            assert self.window.commit(got) == still_ok
            if still_ok:
                model.commit(got)

    @rule(low=st.integers(0, M32))
    def forged(self, low: int) -> None:
        """Any low half: check agrees with the model; an attacker's ICV never verifies."""
        assert self.window.check(low) == self.model.expected_check(low)

    @invariant()
    def same_top(self) -> None:
        assert self.window.top == self.model.top

    @invariant()
    def window_bits_match(self) -> None:
        top = self.model.top
        for seq in (top, top - 1, top - 2, top - self.model.size + 1, top - self.model.size):
            if seq >= 1:
                expected = top - self.model.size < seq and seq in self.model.seen
                assert self.window.seen(seq) == expected


ReplayMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=60, deadline=None)
TestReplayMachine = ReplayMachine.TestCase
