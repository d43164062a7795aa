"""A minimal RADIUS server around any EapServer, so RADIUS-speaking EAP peers can test it.

Theory of operation
-------------------
:class:`RadiusEapShim` answers Access-Requests (RFC 2865, RFC 3579) on one UDP socket (create
it inside a test namespace with tests.support.survive.in_namespace) in a worker thread. An
Access-Request without State starts a conversation: a new EapServer from the factory, whose
Identity Request is skipped because the peer's first EAP-Message already is its EAP-Response/
Identity (the NAS asked for it). Every later Request carries the State of the last Challenge.
The EapServer's answer goes back in an Access-Challenge while the conversation continues, in an
Access-Accept with the MSK as MS-MPPE-Recv-Key (MSK[0:32]) and MS-MPPE-Send-Key (MSK[32:64],
RFC 2548 §2.4.2-3 salt encryption) on SUCCESS, and in an Access-Reject on FAILURE. Message-
Authenticator is checked on every Request and set on every reply. Test code only.

No RADIUS crypto is written here: the Request's Message-Authenticator is checked with
:func:`pyipsec.radius.codec.message_authenticator`, the MS-MPPE keys are encrypted with
:func:`pyipsec.radius.codec.mppe_encrypt`, attributes use the codec's dictionary, and pyrad
computes the reply's Response Authenticator and Message-Authenticator. Every reply is then
checked with :func:`pyipsec.radius.codec.verify_reply` (a reply our own client would drop is a
bug of the shim, recorded in :attr:`RadiusEapShim.errors`).
"""

from __future__ import annotations

import hmac
import os
import secrets
import socket
import threading
from collections.abc import Callable

from pyrad import packet as radius

from pyipsec.ike.eap.base import EapOutcome, EapServer
from pyipsec.radius.codec import (
    ACCESS_REQUEST,
    ReplyDropped,
    RequestContext,
    message_authenticator,
    mppe_encrypt,
    radius_dictionary,
    split_eap,
    verify_reply,
)

__all__ = ["FirstByteRandom", "RadiusEapShim"]

_MICROSOFT = 311
_MS_MPPE_SEND_KEY = 16
_MS_MPPE_RECV_KEY = 17


class FirstByteRandom:
    """A RandomSource whose first byte is given (the EAP Identifier the NAS already used)."""

    def __init__(self, first: int) -> None:
        self._first: int | None = first

    def random_bytes(self, n: int) -> bytes:
        if self._first is not None and n >= 1:
            first, self._first = self._first, None
            return bytes([first]) + os.urandom(n - 1)
        return os.urandom(n)


def _salt() -> bytes:
    """A random MS-MPPE salt, its high bit set (RFC 2548 §2.4.2)."""
    return bytes([0x80 | secrets.randbelow(128), secrets.randbelow(256)])


def _message_authenticator_ok(req: radius.AuthPacket, raw: bytes, secret: bytes) -> bool:
    """The Access-Request's Message-Authenticator (RFC 3579 §3.2), its vector the Request
    Authenticator in the packet itself."""
    values = req.get("Message-Authenticator", [])
    packet = raw[: int.from_bytes(raw[2:4], "big")]
    expected = message_authenticator(secret, packet, packet[4:20])
    return len(values) == 1 and hmac.compare_digest(values[0], expected)


class RadiusEapShim:
    """Serves EAP conversations of ``factory(first_identifier)`` over RADIUS on ``sock``."""

    def __init__(self, sock: socket.socket, secret: bytes, factory: Callable[[int], EapServer]) -> None:
        self.sock = sock
        self.secret = secret
        self.factory = factory
        self.sessions: dict[bytes, EapServer] = {}
        self.finished: list[EapServer] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="radius-eap-shim", daemon=True)

    def start(self) -> None:
        self.sock.settimeout(0.2)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                raw, addr = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                reply = self._answer(raw)
            except Exception as exc:  # recorded for the test to report
                self.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            if reply is not None:
                self.sock.sendto(reply, addr)

    def _answer(self, raw: bytes) -> bytes | None:
        req = radius.AuthPacket(packet=raw, secret=self.secret, dict=radius_dictionary())
        if req.code != radius.AccessRequest:
            return None
        if not _message_authenticator_ok(req, raw, self.secret):
            self.errors.append("Access-Request with a bad Message-Authenticator")
            return None
        eap = b"".join(req["EAP-Message"]) if "EAP-Message" in req else b""
        state = req["State"][0] if "State" in req else None
        if state is None:
            server = self.factory(eap[1] if len(eap) > 1 else 0)
            server.start()
        else:
            server = self.sessions.pop(state)
        out = server.process(eap)
        reply = req.CreateReply()
        reply["EAP-Message"] = split_eap(out)
        if server.outcome is EapOutcome.CONTINUE:
            reply.code = radius.AccessChallenge
            new_state = secrets.token_bytes(16)
            self.sessions[new_state] = server
            reply["State"] = new_state
        elif server.outcome is EapOutcome.SUCCESS:
            reply.code = radius.AccessAccept
            msk = server.msk
            # Raw (vendor, type) keys take a list of encoded values: pyrad must not encrypt again.
            for vendor_type, key in ((_MS_MPPE_RECV_KEY, msk[:32]), (_MS_MPPE_SEND_KEY, msk[32:64])):
                reply[(_MICROSOFT, vendor_type)] = [
                    mppe_encrypt(key, self.secret, req.authenticator, _salt())
                ]
            self.finished.append(server)
        else:
            reply.code = radius.AccessReject
            self.finished.append(server)
        reply.add_message_authenticator()
        result: bytes = reply.ReplyPacket()
        check = verify_reply(result, RequestContext(ACCESS_REQUEST, req.id, req.authenticator, self.secret))
        if isinstance(check, ReplyDropped):
            raise AssertionError(f"the shim built a reply our client drops: {check.detail}")
        return result
