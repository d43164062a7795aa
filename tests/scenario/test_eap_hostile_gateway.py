"""A gateway that lies in EAP (RELIABILITY.md §5 C7; CVE-2021-45079 class): the client must never
consider the gateway authenticated, nor install a Child SA, unless the EAP method really
finished and the gateway's final AUTH is computed with the MSK both sides derived.

The gateway engine is real; only its EAP server is swapped for :class:`LyingServer`, which
wraps a genuine MS-CHAPv2 server and misbehaves in one chosen way: EAP-Success before the
method finished (right after Identity, or instead of the Success-Request carrying the
authenticator response), an EAP-Failure, a Success with no MSK, or a Success whose MSK is
not the one the method derived. The client's EAP peer refuses the first three itself; with a
wrong or missing MSK the gateway cannot verify the client's AUTH and refuses it (that the
client would also refuse a gateway AUTH made with a wrong MSK is not reached here).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pyipsec.crypto.rand import SeededRandom
from pyipsec.iana.ikev2 import EapCode, EapType
from pyipsec.ike.eap.base import EapOutcome, eap_failure, eap_success
from pyipsec.ike.eap.mschapv2 import MsChapV2Server
from pyipsec.ike.events import ChildSaInstalled, IkeSaClosed, IkeSaEstablished
from pyipsec.ike.tasks.ike_auth import MAX_EAP_MESSAGES
from pyipsec.wire.payloads.eap import EapMessage
from tests.scenario.test_remote_access import RoadWarrior


class LyingServer:
    """An MS-CHAPv2 server that lies in one way (``mode``)."""

    def __init__(self, real: MsChapV2Server, mode: str) -> None:
        self.real = real
        self.mode = mode
        self._outcome: EapOutcome | None = None
        self.loops = 0

    def start(self) -> bytes:
        return self.real.start()

    def process(self, response: bytes) -> bytes:
        ident = EapMessage.decode(response).identifier
        if self.mode == "identity-loop":  # asks who you are, forever
            self.loops += 1
            if self.loops > 1000:  # no cap at all: end the test (an internal error closes the SA)
                raise AssertionError("the client never gave up")
            return EapMessage(EapCode.REQUEST, (ident + 1) % 256, EapType.IDENTITY).encode()
        if self.mode == "success-after-identity" and self.real.identity is None:
            self._outcome = EapOutcome.SUCCESS
            return eap_success(ident)
        answer = self.real.process(response)
        if self.mode == "success-instead-of-proof" and self.real.outcome is EapOutcome.CONTINUE:
            request = EapMessage.decode(answer)
            if request.type_data[:1] == b"\x03":  # the MS-CHAPv2 Success-Request
                self._outcome = EapOutcome.SUCCESS
                return eap_success(request.identifier)
        if self.mode == "failure" and self.real.identity is not None:
            self._outcome = EapOutcome.FAILURE
            return eap_failure(ident)
        return answer

    @property
    def outcome(self) -> EapOutcome:
        return self._outcome or self.real.outcome

    @property
    def identity(self) -> str | None:
        return self.real.identity or "alice"

    @property
    def msk(self) -> bytes:
        if self.mode == "no-msk":
            return b""
        if self.mode == "wrong-msk":
            return bytes(64)
        return self.real.msk if self.real.outcome is EapOutcome.SUCCESS else bytes(64)

    @property
    def reason(self) -> str:
        return self.real.reason or f"lying server ({self.mode})"


_WHY = {
    "success-after-identity": "EAP-Success before the gateway proved knowledge of the password",
    "success-instead-of-proof": "EAP-Success before the gateway proved knowledge of the password",
    "failure": "the gateway sent EAP-Failure",
    # the gateway checks our AUTH with its (wrong) MSK first and refuses it
    "no-msk": "AUTHENTICATION_FAILED",
    "wrong-msk": "AUTHENTICATION_FAILED",
}


@pytest.mark.parametrize("mode", sorted(_WHY))
def test_the_client_never_trusts_a_gateway_that_lies_in_eap(tmp_path: Path, mode: str) -> None:
    rw = RoadWarrior(tmp_path)
    p = rw.client("alice", "alice-secret-1")
    p.r.engine.ctx.eap_server = lambda: LyingServer(MsChapV2Server(rw.users, rng=SeededRandom(9)), mode)
    p.initiate()
    p.run()
    assert not p.i.of(IkeSaEstablished) and not p.i.of(ChildSaInstalled)
    (closed,) = p.i.of(IkeSaClosed)
    assert not closed.established and _WHY[mode] in closed.reason
    assert p.i.engine.sas() == []
    # and the gateway ends with no SA either
    assert not p.r.of(ChildSaInstalled) and p.r.engine.sas() == []


def test_the_lying_server_is_honest_when_told_to_be(tmp_path: Path) -> None:
    rw = RoadWarrior(tmp_path)
    p = rw.client("alice", "alice-secret-1")
    p.r.engine.ctx.eap_server = lambda: LyingServer(MsChapV2Server(rw.users, rng=SeededRandom(9)), "honest")
    p.initiate()
    p.run()
    assert p.i.of(IkeSaEstablished) and p.i.of(ChildSaInstalled)


def test_a_gateway_that_bounces_eap_forever_is_given_up_after_fifty_messages(tmp_path: Path) -> None:
    """RELIABILITY.md §5 B8: Identity requests without end; the client answers 50 EAP messages,
    then fails with AUTHENTICATION_FAILED (and says why) instead of looping for ever."""
    rw = RoadWarrior(tmp_path)
    p = rw.client("alice", "alice-secret-1")
    servers: list[LyingServer] = []

    def looping() -> LyingServer:
        servers.append(LyingServer(MsChapV2Server(rw.users, rng=SeededRandom(9)), "identity-loop"))
        return servers[-1]

    p.r.engine.ctx.eap_server = looping
    p.initiate()
    p.run()
    (closed,) = p.i.of(IkeSaClosed)
    assert f"EAP did not finish within {MAX_EAP_MESSAGES} messages" in closed.reason
    assert not p.i.of(IkeSaEstablished) and p.i.engine.sas() == [] and p.r.engine.sas() == []
    (server,) = servers
    # start() sent the first request; the client answered it and 49 more, then refused the 51st
    assert server.loops == MAX_EAP_MESSAGES
