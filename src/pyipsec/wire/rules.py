"""Which payloads each IKEv2 message may carry (RFC 7296 §1.2-§1.5 and extensions).

Theory of operation: a small static table maps (exchange type, request | response) to the
set of known payload types the message may contain — for protected exchanges, the payloads
*inside* the SK payload, so the check runs after decryption — and to the types that may
appear at most once. :func:`check_payloads` raises ``InvalidSyntax`` for a payload that does
not belong (RFC 7296 §2.21: a malformed or unexpected message gets INVALID_SYNTAX).

Deliberately left out, because they depend on state the wire layer does not have:
which payloads are *required* (an error response carries only a Notify; an EAP IKE_AUTH
request has no AUTH, RFC 7296 §2.16), and payload order (e.g. a COOKIE notify first,
RFC 7296 §2.6). Unknown payload types are always allowed: non-critical ones are to be
ignored (RFC 7296 §2.5), and critical ones never decode. Exchange types not in the table
(e.g. IKE_INTERMEDIATE, RFC 9242, whose content its users define) are not checked.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from pyipsec.errors import InvalidSyntax
from pyipsec.iana.ikev2 import ExchangeType, PayloadType
from pyipsec.wire.message import Message
from pyipsec.wire.payloads.base import Payload

__all__ = ["AT_MOST_ONCE", "MessageKind", "PayloadRule", "RULES", "check_payloads", "rule_for"]

P = PayloadType


@dataclass(frozen=True, slots=True)
class MessageKind:
    """A request or response of one exchange type."""

    exchange_type: ExchangeType
    is_response: bool

    @classmethod
    def of(cls, msg: Message) -> MessageKind:
        return cls(msg.exchange_type, msg.is_response)

    def __str__(self) -> str:
        return f"{self.exchange_type.name} {'response' if self.is_response else 'request'}"


@dataclass(frozen=True, slots=True)
class PayloadRule:
    """The known payload types a message may carry, and the RFC text that says so."""

    allowed: frozenset[PayloadType]
    reference: str


AT_MOST_ONCE = frozenset({P.SA, P.KE, P.NONCE, P.IDi, P.IDr, P.AUTH, P.TSi, P.TSr, P.CP, P.EAP, P.SK, P.SKF})
"""Payload types that appear at most once per message (RFC 7296 §1.2-§1.4 message layouts)."""

_KNOWN = frozenset(
    {P.SA, P.KE, P.IDi, P.IDr, P.CERT, P.CERTREQ, P.AUTH, P.NONCE, P.N, P.D, P.V}
    | {P.TSi, P.TSr, P.SK, P.CP, P.EAP, P.SKF}
)
"""The RFC 7296 / RFC 7383 payload types the rules speak about; other types are not judged."""

_ANYWHERE = frozenset({P.N, P.V})  # RFC 7296 §3.10 (Notify), §3.12 (Vendor ID)


def _rule(reference: str, *types: PayloadType) -> PayloadRule:
    return PayloadRule(frozenset(types) | _ANYWHERE, reference)


RULES: dict[MessageKind, PayloadRule] = {
    MessageKind(ExchangeType.IKE_SA_INIT, False): _rule(
        "RFC 7296 §1.2: HDR, SAi1, KEi, Ni", P.SA, P.KE, P.NONCE
    ),
    MessageKind(ExchangeType.IKE_SA_INIT, True): _rule(
        "RFC 7296 §1.2: HDR, SAr1, KEr, Nr, [CERTREQ]", P.SA, P.KE, P.NONCE, P.CERTREQ
    ),
    MessageKind(ExchangeType.IKE_AUTH, False): _rule(
        "RFC 7296 §1.2: SK {IDi, [CERT,] [CERTREQ,] [IDr,] AUTH, SAi2, TSi, TSr}; §2.16 EAP; §3.15 CP",
        *(P.IDi, P.CERT, P.CERTREQ, P.IDr, P.AUTH, P.SA, P.TSi, P.TSr, P.CP, P.EAP),
    ),
    MessageKind(ExchangeType.IKE_AUTH, True): _rule(
        "RFC 7296 §1.2: SK {IDr, [CERT,] AUTH, SAr2, TSi, TSr}; §2.16 EAP; §3.15 CP",
        *(P.IDr, P.CERT, P.AUTH, P.SA, P.TSi, P.TSr, P.CP, P.EAP),
    ),
    MessageKind(ExchangeType.CREATE_CHILD_SA, False): _rule(
        "RFC 7296 §1.3: SK {SA, Ni, [KEi,] [TSi, TSr]}", P.SA, P.NONCE, P.KE, P.TSi, P.TSr, P.CP
    ),
    MessageKind(ExchangeType.CREATE_CHILD_SA, True): _rule(
        "RFC 7296 §1.3: SK {SA, Nr, [KEr,] [TSi, TSr]}", P.SA, P.NONCE, P.KE, P.TSi, P.TSr, P.CP
    ),
    MessageKind(ExchangeType.INFORMATIONAL, False): _rule(
        "RFC 7296 §1.4: SK {[N,] [D,] [CP,] ...}", P.D, P.CP
    ),
    MessageKind(ExchangeType.INFORMATIONAL, True): _rule(
        "RFC 7296 §1.4: SK {[N,] [D,] [CP], ...}", P.D, P.CP
    ),
}
"""CP is tolerated in CREATE_CHILD_SA (harmless, and the tasks ignore what they do not ask for)."""


def rule_for(kind: MessageKind) -> PayloadRule | None:
    """The rule for ``kind``, or None if that exchange type is not checked."""
    return RULES.get(kind)


def check_payloads(kind: MessageKind, payloads: Iterable[Payload]) -> None:
    """Raise ``InvalidSyntax`` if a known payload type is out of place or repeated.

    ``payloads`` is the plaintext chain: the outer chain of IKE_SA_INIT, the decrypted
    SK contents of the other exchanges.
    """
    rule = RULES.get(kind)
    if rule is None:
        return
    counts = Counter(p.payload_type for p in payloads)
    for ptype, count in counts.items():
        if ptype in _KNOWN and ptype not in rule.allowed:
            raise InvalidSyntax(f"{ptype.name} payload not allowed in {kind} ({rule.reference})")
        if count > 1 and ptype in AT_MOST_ONCE:
            raise InvalidSyntax(f"{count} {ptype.name} payloads in {kind}; at most one is allowed")
