"""A cookie-answering IKE_SA_INIT flood against one engine (RELIABILITY.md B1, B2, B4).

The attacker takes one well-formed IKE_SA_INIT request (made by a real initiator engine),
varies its SPIi and its source address, and answers every COOKIE challenge by sending the
request again with the cookie in front (RFC 7296 §2.6): cheap for it, one round trip, and
each request that gets through makes the responder do its DH and keep a half-open SA.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address

from pyipsec.crypto.rand import SeededRandom
from pyipsec.iana.ikev2 import NotifyType
from pyipsec.ike.config import ConnectionConfig, EngineConfig
from pyipsec.ike.credentials import MemoryCredentials, SharedSecret
from pyipsec.ike.engine import IkeEngine
from pyipsec.net.addr import Datagram, Endpoint
from pyipsec.wire.message import Message, decode_message, encode_message
from pyipsec.wire.payloads.notify import Notify
from tests.support.engines import I_ADDR, R_ADDR, EnginePair, psk_connection

__all__ = ["InitFlood", "flood_pair", "source"]


def flood_pair(conn: dict[str, object] | None = None, **settings: object) -> EnginePair:
    """The flood tests' two engines: a road warrior "office" and a gateway "gw" that takes any
    address (PSK); ``conn`` adds connection keys to both, ``settings`` go to the gateway's
    EngineConfig."""
    extra = conn or {}
    i = psk_connection(
        "office", local_id="moon.test", remote_id="sun.test", local_addr=I_ADDR, remote_addr=R_ADDR, **extra
    )
    r = psk_connection(
        "gw",
        local_id="sun.test",
        remote_id="moon.test",
        local_addr=R_ADDR,
        remote_addr="%any",
        local_ts="10.2.0.0/16",
        remote_ts="10.1.0.0/16",
        **extra,
    )
    return EnginePair(i, [r], responder_settings=settings)


def source(n: int) -> IPv4Address:
    """The n-th attacker address, in 10.99.0.0/16 and beyond."""
    return IPv4Address(int(IPv4Address("10.99.0.0")) + n)


@dataclass
class InitFlood:
    """Sends IKE_SA_INIT requests to ``target`` (the responder's endpoint) and echoes cookies."""

    conn: ConnectionConfig  # the initiator's connection whose IKE_SA_INIT is replayed
    target: Endpoint
    sent: int = 0
    cookies: int = 0  # COOKIE challenges answered
    answered: int = 0  # IKE_SA_INIT responses (the responder made a half-open SA)
    unanswered: int = 0  # requests the responder dropped without a word
    _template: Message = field(init=False)
    _raw: bytes = field(init=False)
    _next_spi: int = 1

    def __post_init__(self) -> None:
        engine = IkeEngine(
            EngineConfig({self.conn.name: self.conn}),
            MemoryCredentials([SharedSecret(b"attacker attacker attacker")]),
            rng=SeededRandom(99),
        )
        _, out = engine.initiate(self.conn.name, 0.0)
        self._raw = out.datagrams[0].payload
        self._template = decode_message(self._raw)

    def request(self, src: IPv4Address, *, cookie: bytes | None = None, spi: bytes | None = None) -> Datagram:
        if spi is None:
            spi = self._next_spi.to_bytes(8, "big")
            self._next_spi += 1
        if cookie is None:  # the same request with another SPIi (nothing protects its bytes)
            return Datagram(self.target, Endpoint(src, 500), spi + self._raw[8:])
        msg = replace(self._template, spi_i=spi)
        msg = msg.with_payloads((Notify.cookie(cookie), *msg.payloads))
        return Datagram(self.target, Endpoint(src, 500), encode_message(msg))

    def send(self, engine: IkeEngine, src: IPv4Address, now: float, *, echo: bool = True) -> None:
        """One IKE_SA_INIT from ``src``, and its cookie-carrying repeat if challenged (unless
        ``echo`` is off: a spoofing attacker never sees the COOKIE)."""
        d = self.request(src)
        self.sent += 1
        out = engine.receive_datagram(d, now)
        cookie = _cookie(out.datagrams)
        if cookie is not None and not echo:
            self.cookies += 1
            return
        if cookie is not None:
            self.cookies += 1
            self.sent += 1
            out = engine.receive_datagram(self.request(src, cookie=cookie, spi=d.payload[:8]), now)
        if any(_is_init_response(x.payload) for x in out.datagrams):
            self.answered += 1
        elif not out.datagrams:
            self.unanswered += 1


def _cookie(datagrams: tuple[Datagram, ...]) -> bytes | None:
    for d in datagrams:
        msg = decode_message(d.payload)
        first = msg.payloads[0] if msg.payloads else None
        if isinstance(first, Notify) and first.notify_type is NotifyType.COOKIE:
            return first.data
    return None


def _is_init_response(payload: bytes) -> bool:
    msg = decode_message(payload)
    return msg.is_response and any(isinstance(p, Notify) is False for p in msg.payloads)
