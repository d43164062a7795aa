"""Hypothesis: EAP-MSCHAPv2 on arbitrary or mutated input never raises, and never succeeds falsely."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pyipsec.crypto.rand import SeededRandom
from pyipsec.errors import EapError
from pyipsec.iana.ikev2 import EapCode
from pyipsec.ike.eap import EapOutcome, MsChapV2Peer, MsChapV2Server
from pyipsec.wire.payloads.eap import EapMessage
from tests.unit.eap._support import DictUsers

_CODE_OF = {
    EapOutcome.CONTINUE: EapCode.REQUEST,
    EapOutcome.SUCCESS: EapCode.SUCCESS,
    EapOutcome.FAILURE: EapCode.FAILURE,
}


def _honest_transcript() -> list[bytes]:
    s = MsChapV2Server(DictUsers(alice="pw"), rng=SeededRandom(1))
    p = MsChapV2Peer("alice", "pw", rng=SeededRandom(2))
    packets = [s.start()]
    while (answer := p.process(packets[-1])) is not None:
        packets += [answer, s.process(answer)]
    return packets  # request, response, request, ... , EAP-Success


TRANSCRIPT = _honest_transcript()
RESPONSES = TRANSCRIPT[1::2]
REQUESTS = TRANSCRIPT[0::2]


def _mutate(data: bytes, index: int, value: int) -> bytes:
    i = index % len(data)
    return data[:i] + bytes([value]) + data[i + 1 :]


@given(
    step=st.integers(0, len(RESPONSES) - 1),
    junk=st.one_of(st.binary(max_size=80), st.tuples(st.integers(0, 200), st.integers(0, 255))),
)
def test_server_answers_anything_with_a_consistent_packet(step: int, junk: bytes | tuple[int, int]) -> None:
    s = MsChapV2Server(DictUsers(alice="pw"), rng=SeededRandom(1))
    s.start()
    for honest in RESPONSES[:step]:
        s.process(honest)
    packet = junk if isinstance(junk, bytes) else _mutate(RESPONSES[step], *junk)
    out = s.process(packet)
    msg = EapMessage.decode(out)
    assert msg.code == _CODE_OF[s.outcome]
    if s.outcome is EapOutcome.SUCCESS:  # only the final acknowledgement can be accepted
        assert step == len(RESPONSES) - 1 and len(s.msk) == 64
    else:
        assert s.msk == b""
    if s.outcome is EapOutcome.FAILURE:
        assert s.reason


@given(
    step=st.integers(0, len(REQUESTS) - 1),
    junk=st.one_of(st.binary(max_size=80), st.tuples(st.integers(0, 200), st.integers(0, 255))),
)
def test_peer_answers_anything_without_raising(step: int, junk: bytes | tuple[int, int]) -> None:
    p = MsChapV2Peer("alice", "pw", rng=SeededRandom(2))
    for honest in REQUESTS[:step]:
        p.process(honest)
    packet = junk if isinstance(junk, bytes) else _mutate(REQUESTS[step], *junk)
    out = p.process(packet)
    if out is not None:
        assert EapMessage.decode(out).code == EapCode.RESPONSE
    if p.outcome is EapOutcome.SUCCESS:
        # Only the genuine EAP-Success after the verified exchange can get here.
        assert step == len(REQUESTS) - 1 and packet == REQUESTS[-1]
        assert len(p.msk) == 64
    if p.outcome is EapOutcome.FAILURE:
        assert p.reason and p.msk == b""


@given(st.lists(st.binary(max_size=120), min_size=1, max_size=8))
def test_forged_requests_never_make_the_peer_succeed(packets: list[bytes]) -> None:
    # Without the password no gateway can produce the S= response, so any sequence of packets
    # (EAP-Success included) must leave the peer at CONTINUE or FAILURE.
    p = MsChapV2Peer("alice", "pw", rng=SeededRandom(2))
    for packet in [*packets, b"\x03\x00\x00\x04", b"\x03\x01\x00\x04"]:
        try:
            p.process(packet)
        except EapError:
            assert p.outcome is not EapOutcome.CONTINUE
            break
    assert p.outcome is not EapOutcome.SUCCESS
    assert p.msk == b""
