"""EapMethodPeer: Identity, Nak for methods it lacks (RFC 3748 §5.3), then MSCHAPv2 or TLS as asked."""

from __future__ import annotations

import pytest

from pyipsec.crypto.rand import OS_RANDOM
from pyipsec.errors import EapError
from pyipsec.iana.ikev2 import EapCode, EapType
from pyipsec.ike.eap import EapMethodPeer, EapOutcome, EapPeer, EapTlsPeer, MsChapV2Peer, MsChapV2Server
from tests.unit.eap._support import DictUsers, request, response
from tests.unit.eap._tls_support import USER, peer, run, server


def chooser(*types: EapType, password: str = "secret") -> EapMethodPeer:
    factories = {
        EapType.MSCHAPV2: lambda: MsChapV2Peer(USER, password, rng=OS_RANDOM),
        EapType.TLS: peer,
    }
    return EapMethodPeer(USER, {t: factories[t] for t in types or (EapType.MSCHAPV2, EapType.TLS)})


def test_runs_mschapv2_when_the_gateway_asks_for_it() -> None:
    s = MsChapV2Server(DictUsers(**{USER: "secret"}), rng=OS_RANDOM)
    c = chooser()
    assert isinstance(c, EapPeer) and c.method is None
    run(s, c)
    assert s.outcome is c.outcome is EapOutcome.SUCCESS
    assert c.method is EapType.MSCHAPV2 and isinstance(c.delegate, MsChapV2Peer)
    assert c.msk == s.msk and len(c.msk) == 64


def test_runs_tls_when_the_gateway_asks_for_it() -> None:
    s = server()
    c = chooser()
    run(s, c)
    assert s.outcome is c.outcome is EapOutcome.SUCCESS, (s.reason, c.reason)
    assert c.method is EapType.TLS and isinstance(c.delegate, EapTlsPeer)
    assert c.msk == s.msk and c.delegate.emsk == s.emsk


def test_wrong_password_is_the_methods_failure() -> None:
    s = MsChapV2Server(DictUsers(**{USER: "secret"}), rng=OS_RANDOM)
    c = chooser(password="wrong")
    run(s, c)
    assert s.outcome is c.outcome is EapOutcome.FAILURE
    assert "E=691" in c.reason and c.msk == b""


def test_nak_for_an_unknown_method_then_success() -> None:
    c = chooser()
    assert c.process(request(200, EapType.IDENTITY)) == response(200, EapType.IDENTITY, USER.encode())
    nak = c.process(request(201, EapType.MD5_CHALLENGE, b"\x10" + bytes(16)))
    assert nak == response(201, EapType.NAK, bytes([EapType.TLS, EapType.MSCHAPV2]))
    assert c.outcome is EapOutcome.CONTINUE
    s = server()
    run(s, c)
    assert s.outcome is c.outcome is EapOutcome.SUCCESS
    assert c.method is EapType.TLS


def test_nak_lists_only_the_methods_held() -> None:
    c = chooser(EapType.TLS)
    assert c.process(request(1, EapType.MSCHAPV2, b"\x01")) == response(1, EapType.NAK, bytes([EapType.TLS]))


def test_gateway_without_any_of_our_methods_fails() -> None:
    c = chooser(EapType.TLS)
    s = MsChapV2Server(DictUsers(**{USER: "secret"}), rng=OS_RANDOM)
    run(s, c)
    assert "declined EAP-MSCHAPv2" in s.reason
    assert c.outcome is EapOutcome.FAILURE and c.reason == "the gateway sent EAP-Failure"


def test_second_unknown_proposal_after_the_nak_fails() -> None:
    c = chooser()
    assert c.process(request(1, EapType.MD5_CHALLENGE)) is not None
    assert c.process(request(2, EapType.GTC)) is None
    assert c.outcome is EapOutcome.FAILURE
    assert "after our Nak" in c.reason and "GTC" in c.reason
    with pytest.raises(EapError):
        c.process(request(3, EapType.TLS, b"\x20"))


def test_expanded_request_gets_an_expanded_nak() -> None:
    c = chooser()
    out = c.process(request(4, EapType.EXPANDED, bytes(3) + (99).to_bytes(4, "big")))
    assert out is not None
    data = out[5:]
    assert data[:7] == bytes(3) + (3).to_bytes(4, "big")
    assert data[7:] == b"".join(
        bytes([254]) + bytes(3) + int(t).to_bytes(4, "big") for t in (EapType.TLS, EapType.MSCHAPV2)
    )


def test_success_before_any_method_is_refused() -> None:
    c = chooser()
    c.process(request(1, EapType.IDENTITY))
    assert c.process(bytes([EapCode.SUCCESS, 1, 0, 4])) is None
    assert c.outcome is EapOutcome.FAILURE and "before any authentication method" in c.reason
    assert c.msk == b""


def test_notification_and_retransmission_are_answered() -> None:
    c = chooser()
    ident = request(9, EapType.IDENTITY)
    first = c.process(ident)
    assert c.process(ident) == first
    assert c.process(request(10, EapType.NOTIFICATION, b"hello")) == response(10, EapType.NOTIFICATION)
    c.process(request(10, EapType.IDENTITY))
    assert c.outcome is EapOutcome.FAILURE and "reuses Identifier 10" in c.reason


def test_malformed_input_fails_without_raising() -> None:
    c = chooser()
    assert c.process(b"\x01\x02") is None
    assert c.outcome is EapOutcome.FAILURE and "malformed" in c.reason


def test_constructor_checks() -> None:
    with pytest.raises(ValueError, match="at least one"):
        EapMethodPeer("a", {})
    with pytest.raises(ValueError, match="not an authentication method"):
        EapMethodPeer("a", {EapType.NAK: peer})
    with pytest.raises(ValueError, match="256"):
        EapMethodPeer("a" * 300, {EapType.TLS: peer})
