"""The flood benchmark's attacker (``bench/flood_attacker.py``): its pure logic, so the bench does not rot.

The requests it builds must be what a pyipsec responder accepts (decoded by the wire codec,
answered by a real :class:`~pyipsec.ike.engine.IkeEngine` with a full IKE_SA_INIT response),
and its COOKIE echo must be what RFC 7296 §2.6 asks for: the same request with N(COOKIE) first.
No sockets, no root.
"""

from __future__ import annotations

from dataclasses import replace

from bench.flood_attacker import InitBuilder, classify, echo_with_cookie, source_addresses

from pyipsec.crypto.rand import SeededRandom
from pyipsec.iana.ikev2 import ExchangeType, NotifyType
from pyipsec.iana.transforms import KeId
from pyipsec.ike.config import EngineConfig
from pyipsec.ike.credentials import MemoryCredentials, SharedSecret
from pyipsec.ike.engine import IkeEngine
from pyipsec.ike.tasks.common import nat_hash
from pyipsec.net.addr import Datagram, Endpoint
from pyipsec.wire.message import decode_message, encode_message
from pyipsec.wire.payloads.ke import KeyExchange
from pyipsec.wire.payloads.nonce import Nonce
from pyipsec.wire.payloads.notify import Notify
from pyipsec.wire.payloads.sa import SecurityAssociation
from tests.support.engines import ike, psk_connection

GW = Endpoint.parse("192.0.2.2", 500)
SRC = Endpoint.parse("10.99.0.1", 500)
PROPOSAL = "aes256gcm16-prfsha256-ecp256"


def _gateway(cookie_threshold: int) -> IkeEngine:
    conn = psk_connection(
        "rw",
        local_id="gw.test",
        remote_id="client.test",
        local_addr=str(GW.ip),
        remote_addr="%any",
        proposals=PROPOSAL,
    )
    config = replace(EngineConfig({"rw": conn}), cookie_threshold=cookie_threshold)
    return IkeEngine(config, MemoryCredentials([SharedSecret(b"x" * 32)]), rng=SeededRandom(3))


def _send(gw: IkeEngine, data: bytes) -> bytes:
    out = gw.receive_datagram(Datagram(GW, SRC, data), 0.0)
    (answer,) = out.datagrams
    assert answer.remote == SRC
    return answer.payload


def test_request_is_a_well_formed_ike_sa_init_with_valid_nat_hashes() -> None:
    builder = InitBuilder(GW, ike(PROPOSAL), ke_pool=2)
    msg = decode_message(encode_message(builder.request(SRC)))
    assert msg.exchange_type == ExchangeType.IKE_SA_INIT and msg.is_initiator and not msg.is_response
    assert msg.spi_r == bytes(8) and msg.message_id == 0
    assert msg.find(SecurityAssociation) is not None
    ke = msg.find(KeyExchange)
    assert ke is not None and ke.group == KeId.ECP_256 and len(ke.data) == 64
    nonce = msg.find(Nonce)
    assert nonce is not None and len(nonce.data) == 32
    src, dst = (
        msg.notify(NotifyType.NAT_DETECTION_SOURCE_IP),
        msg.notify(NotifyType.NAT_DETECTION_DESTINATION_IP),
    )
    assert src is not None and src.nat_hash() == nat_hash(msg.spi_i, bytes(8), SRC)
    assert dst is not None and dst.nat_hash() == nat_hash(msg.spi_i, bytes(8), GW)
    other = builder.request(SRC)
    assert other.spi_i != msg.spi_i and other.find(Nonce) != nonce


def test_a_pyipsec_responder_answers_the_request_with_a_full_response() -> None:
    req = InitBuilder(GW, ike(PROPOSAL), ke_pool=1).request(SRC)
    answer = classify(_send(_gateway(cookie_threshold=10), encode_message(req)))
    assert answer.kind == "init" and answer.spi_i == req.spi_i


def test_cookie_echo_puts_the_cookie_first_and_the_responder_accepts_it() -> None:
    gw = _gateway(cookie_threshold=0)  # demand a COOKIE from everyone
    req = InitBuilder(GW, ike(PROPOSAL), ke_pool=1).request(SRC)
    demand = classify(_send(gw, encode_message(req)))
    assert demand.kind == "cookie" and demand.spi_i == req.spi_i and demand.cookie

    echo = echo_with_cookie(req, demand.cookie)
    first = echo.payloads[0]
    assert isinstance(first, Notify) and first.notify_type == NotifyType.COOKIE
    assert first.data == demand.cookie
    assert echo.payloads[1:] == req.payloads and echo.spi_i == req.spi_i
    # the cookie anywhere but first is no answer to the demand: the responder asks again
    late = replace(echo, payloads=(*req.payloads, first))
    assert classify(_send(gw, encode_message(late))).kind == "cookie"
    assert classify(_send(gw, encode_message(echo))).kind == "init"

    # echoing twice replaces the old cookie rather than stacking two
    again = echo_with_cookie(echo, b"\x01" * 16)
    assert [p for p in again.payloads if isinstance(p, Notify) and p.notify_type == NotifyType.COOKIE] == [
        Notify.cookie(b"\x01" * 16)
    ]


def test_classify_names_errors_and_never_raises() -> None:
    gw = _gateway(cookie_threshold=10)
    bad = InitBuilder(GW, ike("aes128-sha1-modp2048"), ke_pool=1).request(SRC)
    answer = classify(_send(gw, encode_message(bad)))
    assert (answer.kind, answer.error) == ("error", "NO_PROPOSAL_CHOSEN")
    assert classify(b"").kind == "other"
    assert classify(b"\x00" * 27).kind == "other"


def test_source_addresses_skip_network_and_broadcast_like_octets() -> None:
    addrs = source_addresses("10.99.0.250", 8)
    assert addrs == [
        "10.99.0.250", "10.99.0.251", "10.99.0.252", "10.99.0.253", "10.99.0.254",
        "10.99.1.1", "10.99.1.2", "10.99.1.3",
    ]  # fmt: skip
    assert len(set(source_addresses("10.99.0.1", 500))) == 500
