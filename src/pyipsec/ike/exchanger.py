"""Message mechanics of one IKE SA: message IDs, the request in flight, the response cache,
protection and fragments. It knows no task; the task manager (``ike.manager``) drives it.

Theory of operation (RFC 7296 §2.1-2.3): each side numbers its own requests 0, 1, 2, …; a
response carries the request's ID. One request of ours is in flight at a time (window size
1); further exchanges wait in ``queue``. The request in flight keeps its datagrams for
retransmission. As responder we process the request whose ID is the next expected one and
keep our response: a retransmitted request (the previous ID, the same exchange, and
authentic: the same IKE_SA_INIT bytes, or a valid ICV) is answered from that cache; any other
ID is dropped, and so is an unprotected IKE_SA_INIT once the SA has keys. Everything after
IKE_SA_INIT is protected (``ike.protect``, with keys derived on first use from the SA's SK_*
keys); a message that fails its integrity check is dropped silently, since unauthenticated
input must not change state (§2.21). Messages larger than the peer accepts are sent as RFC 7383
fragments, and fragments we receive are reassembled (per direction).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyipsec.errors import DecodeError, IntegrityError, UnsupportedCriticalPayload
from pyipsec.iana.ikev2 import ExchangeType
from pyipsec.ike.fragment import Reassembler
from pyipsec.ike.protect import SkProtector
from pyipsec.ike.task import Exchange, QueueItem
from pyipsec.net.addr import Datagram, Endpoint
from pyipsec.wire.message import Message, encode_message
from pyipsec.wire.payloads.base import Payload
from pyipsec.wire.payloads.sk import EncryptedFragment

if TYPE_CHECKING:
    from pyipsec.ike.sa import IkeSa

__all__ = ["Exchanger", "InFlight"]


@dataclass(slots=True)
class InFlight:
    """Our request waiting for its response: the exchange, its ID and datagrams, the retries."""

    exchange: Exchange
    message_id: int
    packets: list[bytes] = field(default_factory=list)
    attempt: int = 0
    deadline: float = 0.0
    # transmissions (by ``attempt``) that drew an ignored unauthenticated error answer
    errored: set[int] = field(default_factory=set)


class Exchanger:
    def __setattr__(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)
        if name == "inflight":  # a new retransmission deadline, or none
            self.sa.touch()

    def __init__(self, sa: IkeSa) -> None:
        self.sa = sa
        self.next_out = 0
        self.next_in = 0
        self.queue: list[QueueItem] = []  # (a few items at most: a list is smaller than a deque)
        self.inflight: InFlight | None = None
        # our last response: its message ID, exchange type and datagrams
        self.cached: tuple[int, ExchangeType, list[bytes]] | None = None
        self.dropped = 0  # messages dropped (bad ICV, unexpected IDs, malformed plaintext)
        self.in_response = False  # processing a response: what it queues waits until it is done
        self.outbox: list[Datagram] = []
        self._protect: tuple[SkProtector, SkProtector] | None = None  # (out, in)
        self._reassembly: dict[bool, Reassembler] = {}  # requests / responses, made on first use

    def release(self) -> None:
        """The SA is gone: fragments collected for it go back to the engine's budget."""
        for collector in self._reassembly.values():
            collector.release()
        self._reassembly.clear()

    def busy(self) -> bool:
        return self.inflight is not None or bool(self.queue)

    def _protectors(self) -> tuple[SkProtector, SkProtector] | None:
        sa = self.sa
        if self._protect is None and sa.keys is not None:
            assert sa.encr is not None
            self._protect = SkProtector.pair(sa.encr, sa.integ, sa.keys, initiator=sa.initiator)
        return self._protect

    # -- sending ----------------------------------------------------------------------------

    def send(self, packets: list[bytes], to: tuple[Endpoint, Endpoint] | None = None) -> None:
        local, remote = to or (self.sa.local, self.sa.remote)
        self.outbox.extend(Datagram(local, remote, p) for p in packets)
        self.sa.touch()

    def encode(
        self, exchange: ExchangeType, message_id: int, *, response: bool, payloads: list[Payload]
    ) -> list[bytes]:
        """The datagrams of one message: one, or SKF fragments when it is too large (RFC 7383)."""
        sa = self.sa
        header = Message(
            sa.spi_i,
            sa.spi_r,
            exchange_type=exchange,
            message_id=message_id,
            is_initiator=sa.initiator,
            is_response=response,
        )
        if exchange is ExchangeType.IKE_SA_INIT:
            return [encode_message(header.with_payloads(payloads))]
        protect = self._protectors()
        assert protect is not None, "protected exchange before keys exist"
        packet = protect[0].protect(header, payloads, sa.ctx.rng)
        limit = sa.ctx.config.fragment_size
        fragmenting = sa.peer_fragmentation and sa.connection is not None and sa.connection.fragmentation
        if not fragmenting or len(packet) <= limit:
            return [packet]
        # A fragment's size counts the whole UDP payload, the non-ESP marker included.
        marker = 4 if sa.local.port == sa.ctx.config.nat_t_port else 0
        return list(
            protect[0].protect_fragments(header, payloads, sa.ctx.rng, max_message_len=limit - marker)
        )

    # -- receiving ---------------------------------------------------------------------------

    def expected_response(self, msg: Message) -> bool:
        """Whether ``msg`` answers our request in flight (else it is dropped and counted)."""
        fl = self.inflight
        if fl is None or msg.message_id != fl.message_id or msg.exchange_type != fl.exchange.exchange_type:
            self.dropped += 1
            self.sa.log.debug("dropping unexpected %s response %d", msg.exchange_type.name, msg.message_id)
            return False
        return True

    def retransmitted_request(self, msg: Message) -> bool:
        """A retransmission of the request we answered last: resend the cached response.

        Only a genuine one: the same exchange, and the very bytes of our IKE_SA_INIT request or
        a message that passes the integrity check. Anything else with that message ID (a forged
        or garbage message) is left to :meth:`expected_request`, which drops it — else a small
        unauthenticated datagram would fetch our whole cached response again (amplification).
        """
        cached = self.cached
        if cached is None or msg.message_id != cached[0] or msg.message_id + 1 != self.next_in:
            return False
        if msg.exchange_type is not cached[1] or not self._authentic(msg):
            return False
        last = msg.payloads[-1] if msg.payloads else None
        if isinstance(last, EncryptedFragment) and last.fragment_number != 1:
            return True  # one resend per retransmitted message, on its first fragment (as strongSwan)
        self.sa.log.debug(
            "retransmitted %s request %d: resending our response", msg.exchange_type.name, msg.message_id
        )
        self.send(cached[2], self.sa.arrived)  # to where it came from (RFC 7296 §2.11)
        return True

    def _authentic(self, msg: Message) -> bool:
        if msg.exchange_type is ExchangeType.IKE_SA_INIT:
            return msg.raw == self.sa.init_request
        protect = self._protectors()
        if protect is None:
            return False
        try:
            if msg.payloads and isinstance(msg.payloads[-1], EncryptedFragment):
                protect[1].unprotect_fragment(msg)
            else:
                protect[1].unprotect(msg)
        except UnsupportedCriticalPayload:
            return True  # decoded only after the ICV checked out
        except (IntegrityError, DecodeError, ValueError):
            return False
        return True

    def expected_request(self, msg: Message) -> bool:
        if msg.message_id != self.next_in:
            self.dropped += 1
            self.sa.log.debug(
                "dropping %s request %d: expected %d", msg.exchange_type.name, msg.message_id, self.next_in
            )
            return False
        return True

    def open(self, msg: Message) -> Message | None:
        """The message with its SK payload decrypted, or None if it must be dropped (or is a
        fragment of a message not complete yet). An authentic request carrying an unknown
        critical payload raises :class:`~pyipsec.errors.UnsupportedCriticalPayload`: it is
        answered, not dropped."""
        if msg.exchange_type is ExchangeType.IKE_SA_INIT:
            if msg.message_id != 0 or self.sa.keys is not None:  # unprotected, so only the first
                self.dropped += 1
                self.sa.log.debug("dropping an IKE_SA_INIT %d on an SA with keys", msg.message_id)
                return None
            return msg
        protect = self._protectors()
        if protect is None:
            self.dropped += 1
            self.sa.log.debug("dropping %s: no keys yet", msg.exchange_type.name)
            return None
        try:
            last = msg.payloads[-1] if msg.payloads else None
            if isinstance(last, EncryptedFragment):
                piece = protect[1].unprotect_fragment(msg)
                collector = self._reassembly.get(msg.is_response)
                if collector is None:
                    collector = Reassembler(budget=self.sa.ctx.fragments)
                    self._reassembly[msg.is_response] = collector
                whole = collector.add(msg.message_id, piece)
                if whole is None:
                    return None  # waiting for more fragments
                inner = whole
            else:
                inner = protect[1].unprotect(msg)
        except UnsupportedCriticalPayload:
            if not msg.is_response:
                raise  # authentic (the ICV checked out): the manager answers it (RFC 7296 §2.5)
            self.dropped += 1
            return None
        except (IntegrityError, DecodeError, ValueError) as exc:
            self.dropped += 1
            self.sa.log.info(
                "dropping %s %s %d: %s",
                msg.exchange_type.name,
                "response" if msg.is_response else "request",
                msg.message_id,
                exc,
            )
            return None
        return msg.with_payloads(inner)
