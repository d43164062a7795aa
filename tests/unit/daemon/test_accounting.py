"""RADIUS accounting of IKE SAs (``daemon.accounting``) with a recording client, under a fake clock:
Start, Interim-Updates with the live Child SAs' counters, a session that follows an IKE rekey,
and a Stop that waits for the last counters of the removed Child SAs."""

from __future__ import annotations

import asyncio
from ipaddress import ip_address
from typing import Any

from pyipsec.daemon.accounting import Accounting, terminate_cause
from pyipsec.daemon.lookups import Accepted
from pyipsec.ike.events import CloseCause, IkeSaClosed, IkeSaEstablished
from pyipsec.net.addr import Endpoint
from pyipsec.radius import AccountingRecord, AcctStatus, RadiusAnswerKind, TerminateCause
from pyipsec.radius import EapRelayAnswer as RadiusAnswer
from tests.support.clock import FakeClock

SPI_A, SPI_B = b"\x00\x00\x00\x0a", b"\x00\x00\x00\x0b"


class RecordingClient:
    def __init__(self) -> None:
        self.records: list[AccountingRecord] = []

    async def account(self, record: AccountingRecord) -> bool:
        self.records.append(record)
        return True


def established(sa_id: int, *, rekeyed_from: int | None = None) -> IkeSaEstablished:
    here = Endpoint(ip_address("192.0.2.2"), 4500)
    peer = Endpoint(ip_address("192.0.2.1"), 4500)
    return IkeSaEstablished(
        sa_id, "rw", b"i" * 8, b"r" * 8, False, here, peer, "gw", "alice", None,  # type: ignore[arg-type]
        rekeyed_from=rekeyed_from,
    )  # fmt: skip


ACCEPTED = Accepted(
    "alice",
    "sess-1",
    7,
    "192.0.2.1[4500]",
    "192.0.2.2[4500]",
    RadiusAnswer(RadiusAnswerKind.ACCEPT, classes=(b"org",), server="aaa"),
)


def test_start_interim_rekey_and_stop_with_the_last_counters() -> None:
    async def main() -> list[AccountingRecord]:
        clock, client = FakeClock(), RecordingClient()
        live: dict[bytes, dict[str, int]] = {SPI_A: {"bytes_in": 100, "packets_in": 2}}
        acct = Accounting(
            client,  # type: ignore[arg-type]
            clock,
            lambda done: done(live),
            interim_interval=60,
        )
        acct.established(established(1), ACCEPTED, (ip_address("10.3.0.1"),))
        acct.child_installed(1, SPI_A)
        clock.advance(60)  # an Interim-Update with the live counters
        acct.established(established(2, rekeyed_from=1), None, ())  # the IKE SA is rekeyed
        acct.closed(IkeSaClosed(1, "rw", CloseCause.REKEYED, "rekeyed", True))  # no Stop for that
        assert acct.wants_counters(SPI_A)
        acct.child_removing(SPI_A)
        acct.closed(IkeSaClosed(2, "rw", CloseCause.PEER, "deleted by peer", True))
        await asyncio.sleep(0)
        assert [r.status for r in client.records] == [AcctStatus.START, AcctStatus.INTERIM]  # Stop waits
        clock.advance(30)
        acct.child_removed(SPI_A, {"bytes_in": 250, "bytes_out": 40, "packets_in": 5, "packets_out": 1})
        await asyncio.sleep(0)
        return client.records

    records = asyncio.run(main())
    start, interim, stop = records
    assert (start.user, start.session, start.classes, start.nas_port) == ("alice", "sess-1", (b"org",), 7)
    assert start.framed_ipv4 == ip_address("10.3.0.1") and start.in_octets == 0
    assert (interim.in_octets, interim.in_packets, interim.session_time) == (100, 2, 60)
    assert stop.status is AcctStatus.STOP and stop.session == "sess-1"
    assert (stop.in_octets, stop.out_octets, stop.in_packets, stop.out_packets) == (250, 40, 5, 1)
    assert stop.session_time == 90 and stop.terminate_cause is TerminateCause.USER_REQUEST


def test_sessions_only_for_radius_users_and_causes() -> None:
    async def main() -> list[Any]:
        clock, client = FakeClock(), RecordingClient()
        acct = Accounting(client, clock, lambda done: done({}))  # type: ignore[arg-type]
        acct.established(established(1), None, ())  # not accepted by RADIUS: nothing to account
        acct.child_installed(1, SPI_B)
        assert not acct.wants_counters(SPI_B)
        acct.closed(IkeSaClosed(1, "rw", CloseCause.LOCAL, "down", True))
        await asyncio.sleep(0)
        return client.records

    assert asyncio.run(main()) == []
    assert terminate_cause(CloseCause.TIMEOUT) is TerminateCause.LOST_CARRIER
    assert terminate_cause(CloseCause.LOCAL) is TerminateCause.ADMIN_RESET


def test_a_session_the_gateway_redirected_stops_as_a_nas_request() -> None:
    """After ``pyipsec redirect``/``drain`` the client deletes the old SA itself (make-before-break);
    the Stop says the gateway moved the session (NAS-Request), not that the user left."""

    async def main() -> list[AccountingRecord]:
        clock, client = FakeClock(), RecordingClient()
        acct = Accounting(client, clock, lambda done: done({}))  # type: ignore[arg-type]
        acct.established(established(1), ACCEPTED, (ip_address("10.3.0.1"),))
        acct.child_installed(1, SPI_A)
        acct.redirected(1)
        acct.redirected(99)  # not a RADIUS session: nothing to do
        acct.child_removing(SPI_A)
        acct.closed(IkeSaClosed(1, "rw", CloseCause.PEER, "deleted by peer", True))
        acct.child_removed(SPI_A, {"bytes_in": 10, "packets_in": 1})
        await asyncio.sleep(0)
        return client.records

    start, stop = asyncio.run(main())
    assert start.status is AcctStatus.START
    assert stop.status is AcctStatus.STOP and stop.terminate_cause is TerminateCause.NAS_REQUEST
    assert (stop.in_octets, stop.in_packets) == (10, 1)
