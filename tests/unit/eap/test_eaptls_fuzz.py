"""Hypothesis: EAP-TLS on arbitrary or mutated input at any point never raises, never succeeds
falsely, and never holds keys it should not."""

from __future__ import annotations

from functools import cache

from hypothesis import given, settings
from hypothesis import strategies as st

from pyipsec.errors import EapError
from pyipsec.iana.ikev2 import EapCode
from pyipsec.ike.eap import EapOutcome, EapTlsPeer, EapTlsServer, TlsVersion
from pyipsec.wire.payloads.eap import EapMessage
from tests.unit.eap._tls_support import peer, run, server

_CODE_OF = {
    EapOutcome.CONTINUE: EapCode.REQUEST,
    EapOutcome.SUCCESS: EapCode.SUCCESS,
    EapOutcome.FAILURE: EapCode.FAILURE,
}

JUNK = st.one_of(
    st.binary(max_size=120),
    st.tuples(st.integers(0, 4000), st.integers(0, 255)),  # one octet of the honest packet changed
    st.integers(0, 4000),  # the honest packet cut short
)


def _spoil(honest: bytes, junk: bytes | tuple[int, int] | int) -> bytes:
    if isinstance(junk, bytes):
        return junk
    if isinstance(junk, int):
        return honest[: junk % len(honest)]
    i = junk[0] % len(honest)
    return honest[:i] + bytes([junk[1]]) + honest[i + 1 :]


@cache
def _rounds(version: TlsVersion, fragment_size: int) -> int:
    """How many Requests an honest conversation has, to spread the spoiled step over it."""
    t = run(server(max_version=version, fragment_size=fragment_size), peer(fragment_size=fragment_size))
    return len(t.requests)


def _check_server_packet(s: EapTlsServer, out: bytes) -> None:
    assert EapMessage.decode(out).code == _CODE_OF[s.outcome]
    if s.outcome is not EapOutcome.SUCCESS:
        assert s.msk == b"" and s.emsk == b""
    if s.outcome is EapOutcome.FAILURE:
        assert s.reason


def _check_peer(c: EapTlsPeer, out: bytes | None) -> None:
    if out is not None:
        assert EapMessage.decode(out).code == EapCode.RESPONSE
    if c.outcome is not EapOutcome.SUCCESS:
        assert c.msk == b"" and c.emsk == b""
    if c.outcome is EapOutcome.FAILURE:
        assert c.reason


@settings(max_examples=80, deadline=None)
@given(
    version=st.sampled_from(list(TlsVersion)),
    fragment_size=st.sampled_from([64, 200, 1024]),
    where=st.floats(0, 1),
    to_server=st.booleans(),
    junk=JUNK,
)
def test_a_spoiled_packet_at_any_step(
    version: TlsVersion,
    fragment_size: int,
    where: float,
    to_server: bool,
    junk: bytes | tuple[int, int] | int,
) -> None:
    step = int(where * (_rounds(version, fragment_size) - (2 if to_server else 1)))
    s = server(max_version=version, fragment_size=fragment_size)
    c = peer(fragment_size=fragment_size)
    packet = s.start()
    spoiled = False
    for i in range(3000):
        if not spoiled and not to_server and i >= step:
            packet, spoiled = _spoil(packet, junk), True
        try:
            answer = c.process(packet)
        except EapError:
            break  # the peer had already ended; only a misuse error is allowed
        _check_peer(c, answer)
        if answer is None or s.outcome is not EapOutcome.CONTINUE:
            break
        if not spoiled and to_server and i >= step:
            answer, spoiled = _spoil(answer, junk), True
        packet = s.process(answer)
        _check_server_packet(s, packet)
    assert spoiled
    if c.outcome is EapOutcome.SUCCESS:
        assert s.outcome is EapOutcome.SUCCESS
    if s.outcome is EapOutcome.SUCCESS and c.outcome is EapOutcome.SUCCESS:
        assert s.msk == c.msk and s.emsk == c.emsk and len(s.msk) == 64


@settings(max_examples=60, deadline=None)
@given(packets=st.lists(st.binary(max_size=200), max_size=20))
def test_arbitrary_responses_into_a_fresh_server(packets: list[bytes]) -> None:
    s = server()
    s.start()
    for packet in packets:
        if s.outcome is not EapOutcome.CONTINUE:
            break
        _check_server_packet(s, s.process(packet))
    assert s.outcome is not EapOutcome.SUCCESS


@settings(max_examples=60, deadline=None)
@given(packets=st.lists(st.binary(max_size=200), max_size=20))
def test_arbitrary_requests_into_a_fresh_peer(packets: list[bytes]) -> None:
    c = peer()
    for packet in packets:
        try:
            out = c.process(packet)
        except EapError:
            assert c.outcome is not EapOutcome.CONTINUE
            break
        _check_peer(c, out)
    assert c.outcome is not EapOutcome.SUCCESS


_FRAMES = st.tuples(
    st.sampled_from([1, 3, 13, 13, 13, 26]),  # EAP type, mostly EAP-TLS
    st.sampled_from([0x00, 0x20, 0x40, 0x80, 0xC0, 0xE0, 0x1F]),  # flags
    st.one_of(st.none(), st.integers(0, 2**32 - 1), st.integers(0, 300)),  # TLS Message Length
    st.binary(max_size=300),
)


@settings(max_examples=80, deadline=None)
@given(frames=st.lists(_FRAMES, max_size=25))
def test_well_framed_junk_with_the_right_identifiers(
    frames: list[tuple[int, int, int | None, bytes]],
) -> None:
    """Packets that pass the EAP checks reach the EAP-TLS and TLS layers of both sides."""
    s, c = server(), peer()
    request = s.start()
    c.process(request)
    request = s.process(c.process(request) or b"")  # Identity, then Start
    for eap_type, flags, length, data in frames:
        body = (
            bytes([flags & 0x7F]) + data
            if length is None
            else bytes([flags | 0x80]) + length.to_bytes(4, "big") + data
        )
        if s.outcome is EapOutcome.CONTINUE:
            out = s.process(
                bytes([2, request[1]]) + (5 + len(body)).to_bytes(2, "big") + bytes([eap_type]) + body
            )
            _check_server_packet(s, out)
            request = out
        try:
            answer = c.process(
                bytes([1, (request[1] + 1) & 0xFF])
                + (5 + len(body)).to_bytes(2, "big")
                + bytes([eap_type])
                + body
            )
        except EapError:
            assert c.outcome is not EapOutcome.CONTINUE
        else:
            _check_peer(c, answer)
    assert s.outcome is not EapOutcome.SUCCESS and c.outcome is not EapOutcome.SUCCESS
