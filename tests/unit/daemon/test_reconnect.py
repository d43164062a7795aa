"""The reconnect policy on its own (``daemon.reconnect``), under the virtual clock."""

from __future__ import annotations

from ipaddress import ip_address

from pyipsec.config.model import Config
from pyipsec.daemon.reconnect import RECONNECT_MAX, Reconnect
from pyipsec.iana.ikev2 import ProtocolId
from pyipsec.iana.transforms import EncrId
from pyipsec.ike.events import CloseCause, IkeSaClosed, IkeSaEstablished
from pyipsec.ike.proposal import ChosenProposal
from pyipsec.net.addr import Endpoint
from tests.support.clock import FakeClock
from tests.unit.config.test_model import psk_config

EP = Endpoint(ip_address("192.0.2.1"), 500)


def _policy(**child: object) -> tuple[Reconnect, FakeClock, list[tuple[float, str]]]:
    data = psk_config()
    data["connections"]["office"]["children"]["net"].update(child)  # type: ignore[index]
    clock, started = FakeClock(), []
    policy = Reconnect(Config.model_validate(data), clock, lambda name: started.append((clock.now(), name)))
    return policy, clock, started


def _established(sa_id: int = 1) -> IkeSaEstablished:
    chosen = ChosenProposal(1, ProtocolId.IKE, b"", (EncrId.ENCR_AES_GCM_16, 256))
    return IkeSaEstablished(sa_id, "office", bytes(8), bytes(8), True, EP, EP, "a", "b", chosen)


def _closed(sa_id: int = 1, cause: CloseCause = CloseCause.TIMEOUT) -> IkeSaClosed:
    return IkeSaClosed(sa_id, "office", cause, "peer did not answer", True)


def test_connections_started_with_the_daemon() -> None:
    assert _policy(start_action="start")[0].at_boot == {"office"}
    assert _policy(dpd_action="restart")[0].at_boot == set()


def test_restartable_connections_come_back_with_doubling_capped_back_off() -> None:
    policy, clock, started = _policy(dpd_action="restart")
    policy.closed(_closed(), remaining=False)  # never up yet: nothing to keep up
    assert clock.pending() == []
    policy.established(_established())
    delays = []
    for attempt in range(1, 10):
        policy.closed(_closed(), remaining=False)
        closed_at = clock.now()
        assert policy.status(closed_at)["office"] == {
            "attempt": attempt,
            "next_in": min(2.0 ** (attempt - 1), RECONNECT_MAX),
            "reason": "peer did not answer",
        }
        assert clock.step()
        delays.append(started[-1][0] - closed_at)
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]
    policy.established(_established(2))  # the series ends
    assert policy.status(clock.now()) == {}
    policy.closed(_closed(2), remaining=False)
    assert policy.status(clock.now())["office"]["attempt"] == 1  # type: ignore[index]


def test_nothing_restarts_while_another_sa_remains_or_after_down() -> None:
    policy, clock, started = _policy(close_action="start")
    policy.established(_established())
    policy.closed(_closed(), remaining=True)
    assert clock.pending() == []
    policy.down_requested("office")
    policy.closed(_closed(cause=CloseCause.LOCAL), remaining=False)
    assert clock.pending() == [] and started == []
    policy.closed(_closed(cause=CloseCause.PEER), remaining=False)  # the request was used up
    assert len(clock.pending()) == 1


def test_up_clears_a_down_request() -> None:
    policy, clock, _ = _policy(dpd_action="restart")
    policy.established(_established())
    policy.down_requested("office")
    policy.up_requested("office")
    policy.closed(_closed(), remaining=False)
    assert len(clock.pending()) == 1


def test_an_sa_up_by_other_means_cancels_the_pending_attempt() -> None:
    policy, clock, started = _policy(dpd_action="restart")
    policy.established(_established())
    policy.closed(_closed(), remaining=False)
    policy.established(_established(2))  # e.g. `up`, or the peer reconnected to us
    clock.advance(RECONNECT_MAX)
    assert started == []


def test_stop_cancels_everything() -> None:
    policy, clock, started = _policy(start_action="start")
    policy.closed(_closed(), remaining=False)
    policy.stop()
    clock.advance(RECONNECT_MAX)
    assert started == [] and policy.status(clock.now()) == {}
    policy.closed(_closed(), remaining=False)
    assert clock.pending() == []
