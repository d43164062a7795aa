"""The client's EAP method chooser: answer EAP-Identity, then run whichever method the gateway asks.

Theory of operation. A client configured for ``auth = "eap"`` may be able to do several methods
(EAP-MSCHAPv2 with a password, EAP-TLS with a certificate) and does not know which one the
gateway wants. :class:`EapMethodPeer` answers the EAP-Request/Identity (RFC 3748 §5.1) and
Notifications (§5.2) itself. On the first Request of a method it holds, it builds that method's
peer from its factory and hands it the Request and everything after; from then on
``outcome``, ``msk`` and ``reason`` are the method's. For a method it does not hold it answers
a legacy Nak (§5.3.1) listing the types it does hold (an Expanded Nak, §5.3.2, for an Expanded
Request); if the gateway then proposes another method it does not hold, the conversation
FAILs. An EAP-Success before any method ran is refused (no mutual authentication happened);
an EAP-Failure ends it with the gateway's refusal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from pyipsec.errors import DecodeError, EapError
from pyipsec.iana.ikev2 import EapCode, EapType
from pyipsec.ike.eap.base import EapOutcome, EapPeer
from pyipsec.wire.payloads.eap import EapMessage

__all__ = ["MAX_IDENTITY_LEN", "EapMethodPeer"]

MAX_IDENTITY_LEN = 256

_NAK_EXPANDED_HEAD = bytes(3) + int(EapType.NAK).to_bytes(4, "big")


class _Malformed(Exception):
    """Internal: an input that ends the conversation; the text becomes ``reason``."""


class EapMethodPeer(EapPeer):
    """An EapPeer that answers EAP-Identity, then delegates to the method the gateway requests.

    ``methods`` maps each EAP type the client can run to a factory of its peer; a factory is
    called at most once, when the gateway first requests that type.
    """

    def __init__(self, identity: str, methods: Mapping[EapType, Callable[[], EapPeer]]) -> None:
        name = identity.encode("utf-8")
        if len(name) > MAX_IDENTITY_LEN:
            raise ValueError(f"an EAP identity has at most {MAX_IDENTITY_LEN} octets")
        if not methods:
            raise ValueError("EapMethodPeer needs at least one method")
        for eap_type in methods:
            if EapType(eap_type) in (EapType.IDENTITY, EapType.NOTIFICATION, EapType.NAK, EapType.EXPANDED):
                raise ValueError(f"EAP type {eap_type} is not an authentication method")
        self._name = name
        self._methods = {EapType(t): f for t, f in methods.items()}
        self._method: EapType | None = None
        self._delegate: EapPeer | None = None
        self._nak_sent = False
        self._outcome = EapOutcome.CONTINUE
        self._reason = ""
        self._done = False
        self._last_request: bytes | None = None
        self._last_response: bytes | None = None

    @property
    def method(self) -> EapType | None:
        """The method the gateway chose, once it requested one we hold."""
        return self._method

    @property
    def delegate(self) -> EapPeer | None:
        """The running method's peer (for method-specific properties such as ``emsk``)."""
        return self._delegate

    @property
    def outcome(self) -> EapOutcome:
        return self._delegate.outcome if self._delegate else self._outcome

    @property
    def msk(self) -> bytes:
        return self._delegate.msk if self._delegate else b""

    @property
    def reason(self) -> str:
        return self._delegate.reason if self._delegate else self._reason

    def process(self, request: bytes) -> bytes | None:
        if self._delegate is not None:
            return self._delegate.process(request)
        if self._done:
            raise EapError(f"EAP conversation already ended ({self._outcome.value})")
        request = bytes(request)
        try:
            msg = self._decode(request)
            if msg.code == EapCode.SUCCESS:
                raise _Malformed("EAP-Success before any authentication method ran: refused")
            if msg.code == EapCode.FAILURE:
                self._end(self._reason or "the gateway sent EAP-Failure")
                return None
            if msg.code != EapCode.REQUEST:
                raise _Malformed(f"expected an EAP-Request, got code {msg.code.name}")
            if self._last_request is not None and self._last_response is not None:
                if request == self._last_request:  # a retransmission (RFC 3748 §4.1)
                    return self._last_response
                if msg.identifier == self._last_request[1]:
                    raise _Malformed(f"a different EAP-Request reuses Identifier {msg.identifier}")
            if msg.eap_type in self._methods:
                return self._delegate_to(msg.eap_type, request)
            response = self._answer(msg)
        except _Malformed as exc:
            self._end(str(exc))
            return None
        self._last_request, self._last_response = request, response
        return response

    @staticmethod
    def _decode(request: bytes) -> EapMessage:
        try:
            return EapMessage.decode(request)
        except (DecodeError, ValueError) as exc:
            raise _Malformed(f"malformed EAP packet: {exc}") from None

    def _delegate_to(self, eap_type: EapType, request: bytes) -> bytes | None:
        self._method = eap_type
        self._delegate = self._methods[eap_type]()
        return self._delegate.process(request)

    def _answer(self, msg: EapMessage) -> bytes:
        assert msg.eap_type is not None
        if msg.eap_type == EapType.IDENTITY:
            return self._respond(msg, EapType.IDENTITY, self._name)
        if msg.eap_type == EapType.NOTIFICATION:
            return self._respond(msg, EapType.NOTIFICATION, b"")
        if msg.eap_type == EapType.NAK:
            raise _Malformed("an EAP-Request of type Nak")
        offered = sorted(self._methods)
        if self._nak_sent:
            names = ", ".join(t.name for t in offered)
            raise _Malformed(
                f"the gateway proposes EAP type {msg.eap_type.name} after our Nak, none of ours ({names})"
            )
        self._nak_sent = True
        if msg.eap_type == EapType.EXPANDED:  # RFC 3748 §5.3.2: Vendor-Id 0 entries
            data = _NAK_EXPANDED_HEAD + b"".join(
                bytes([EapType.EXPANDED]) + bytes(3) + int(t).to_bytes(4, "big") for t in offered
            )
            return self._respond(msg, EapType.EXPANDED, data)
        return self._respond(msg, EapType.NAK, bytes(int(t) for t in offered))  # RFC 3748 §5.3.1

    @staticmethod
    def _respond(msg: EapMessage, eap_type: EapType, type_data: bytes) -> bytes:
        return EapMessage(EapCode.RESPONSE, msg.identifier, eap_type, type_data).encode()

    def _end(self, reason: str) -> None:
        self._outcome = EapOutcome.FAILURE
        self._reason = reason
        self._done = True

    def __repr__(self) -> str:
        method = self._method.name if self._method is not None else None
        return f"EapMethodPeer(identity={self._name.decode()!r}, method={method})"
