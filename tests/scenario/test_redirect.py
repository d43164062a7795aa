"""Redirect (RFC 5685), drain and failover between two gateways, over the memory network.

One client (``I_ADDR``) and two pyipsec gateways (``GW1``, ``GW2``), each a full runtime under
one virtual clock (``tests.support.daemons``): what is asserted is what goes over the wire
(the REDIRECT / REDIRECTED_FROM notifies) and where the client's IKE SA ends up.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pyipsec.config.model import Config
from pyipsec.daemon.runtime import REKEY_LINGER
from pyipsec.errors import UsageError
from pyipsec.iana.ikev2 import ExchangeType, NotifyType
from pyipsec.ike.events import CloseCause, IkeSaClosed, IkeSaRedirected
from pyipsec.ike.redirect import REDIRECT_LIMIT
from pyipsec.ike.state import IkeSaState
from pyipsec.wire.message import decode_message
from tests.support.daemons import GW_ADDR, I_ADDR, Node, World, _merge, psk_trees
from tests.support.memnet import Sent
from tests.unit.daemon.test_metrics import names, scrape, value

GW1, GW2 = GW_ADDR, "192.0.2.3"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.close()


def _trio(
    world: World,
    tmp_path: Path,
    *,
    client: dict[str, Any] | None = None,
    gw1: dict[str, Any] | None = None,
    gw2: dict[str, Any] | None = None,
    client_child: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
) -> tuple[Node, Node, Node]:
    """The client trusts both gateways (its remote_addrs); each gateway accepts it."""
    base = {"connections": {"office": {"remote_addrs": [GW1, GW2]}}}
    c, g = psk_trees(tmp_path, client=_merge(base, client), client_child=client_child, settings=settings)
    g1 = _merge(copy.deepcopy(g), gw1)
    g2 = _merge(copy.deepcopy(g), {"connections": {"office": {"local_addrs": [GW2]}}})
    g2["settings"]["users"] = str(tmp_path / "gw2.db")
    g2 = _merge(g2, gw2)
    return (
        world.node(Config.model_validate(c), I_ADDR),
        world.node(Config.model_validate(g1), GW1),
        world.node(Config.model_validate(g2), GW2),
    )


def _static(target: str) -> dict[str, Any]:
    return {"settings": {"redirect": {"rule": "static", "target": target}}}


def _up_at(world: World, client: Node, gw: str, *, within: float = 60.0) -> None:
    world.run_while(
        lambda: not any(sa.established and str(sa.remote.ip) == gw for sa in client.sas()), within=within
    )


def _init_requests(world: World, to: str) -> list[Sent]:
    return [
        s for s in world.net.requests(ExchangeType.IKE_SA_INIT, src=I_ADDR) if str(s.datagram.remote.ip) == to
    ]


def test_client_redirected_in_ike_sa_init_comes_up_at_the_other_gateway(world: World, tmp_path: Path) -> None:
    client, gw1, gw2 = _trio(world, tmp_path, gw1=_static(GW2))
    steps: list[dict[str, Any]] = []
    result = world.command(client, "up", {"name": "office"}, progress=steps.append)
    assert result["ok"] is True and result["remote"].startswith(f"{GW2}:")  # `up` follows the redirect
    assert {"phase": "REDIRECT", "detail": f"{GW1} sends us to {GW2}"} in steps
    (sa,) = client.sas()
    assert str(sa.remote.ip) == GW2 and sa.established
    assert gw1.sas() == []  # the redirected half-open SA is gone at once
    assert [sa.established for sa in gw2.sas()] == [True]
    (first,) = _init_requests(world, GW1)
    offer = decode_message(first.datagram.payload)
    assert offer.notify(NotifyType.REDIRECT_SUPPORTED) is not None
    # the answer was the REDIRECT alone, with our nonce
    answers = [
        s for s in world.net.log if str(s.datagram.local.ip) == GW1 and str(s.datagram.remote.ip) == I_ADDR
    ]
    reply = decode_message(answers[0].datagram.payload)
    assert [n.notify_type for n in reply.notifies()] == [NotifyType.REDIRECT]
    (redirect,) = reply.notifies()
    assert str(redirect.redirect_data().gateway) == GW2
    assert redirect.redirect_data().nonce == offer.payloads[2].data  # type: ignore[attr-defined]
    (second,) = _init_requests(world, GW2)
    follow = decode_message(second.datagram.payload)
    came_from = follow.notify(NotifyType.REDIRECTED_FROM)
    assert came_from is not None and str(came_from.redirect_data().gateway) == GW1
    assert follow.notify(NotifyType.REDIRECT_SUPPORTED) is None  # REDIRECTED_FROM says it (RFC 5685 §3)
    assert client.runtime.reconnect.status(world.clock.now()) == {}  # nothing to reconnect
    # no handshake failed: one was redirected, on both sides
    for node in (client, gw1):
        samples = scrape(world, node)
        assert value(samples, "pyipsec_ike_handshakes_total", connection="office", result="redirected") == 1
        assert not names(samples, "pyipsec_ike_handshake_failures_total")


def test_unauthenticated_redirect_to_a_gateway_not_in_the_policy_is_refused(
    world: World, tmp_path: Path
) -> None:
    client, _gw1, gw2 = _trio(
        world,
        tmp_path,
        client={"connections": {"office": {"remote_addrs": [GW1]}}},  # GW2 is not trusted
        gw1=_static(GW2),
        settings={"retransmit_timeout": 1, "retransmit_base": 1.0, "retransmit_tries": 2},
    )
    closed: list[IkeSaClosed] = []
    client.runtime.waiters.feed = closed.append  # type: ignore[method-assign, assignment]
    client.runtime.initiate("office")
    world.run_for(30)
    assert _init_requests(world, GW2) == []  # never went there
    assert gw2.sas() == [] and client.sas() == []
    (end,) = [e for e in closed if isinstance(e, IkeSaClosed)]
    assert end.cause is CloseCause.FAILED and end.error is NotifyType.REDIRECT
    assert "refused an unauthenticated redirect to 192.0.2.3" in end.reason
    assert not any(isinstance(e, IkeSaRedirected) for e in closed)


def test_redirect_allow_lets_an_unauthenticated_redirect_through(world: World, tmp_path: Path) -> None:
    client, _gw1, _gw2 = _trio(
        world,
        tmp_path,
        client={"connections": {"office": {"remote_addrs": [GW1], "redirect_allow": [GW2]}}},
        gw1=_static(GW2),
    )
    client.runtime.initiate("office")
    _up_at(world, client, GW2)


def test_a_client_that_does_not_follow_redirects_is_served_here(world: World, tmp_path: Path) -> None:
    client, gw1, _gw2 = _trio(
        world, tmp_path, client={"connections": {"office": {"redirect": False}}}, gw1=_static(GW2)
    )
    client.runtime.initiate("office")
    _up_at(world, client, GW1)
    (first,) = _init_requests(world, GW1)
    assert decode_message(first.datagram.payload).notify(NotifyType.REDIRECT_SUPPORTED) is None
    assert _init_requests(world, GW2) == []
    (sa,) = gw1.sas()
    # and an established SA of such a client cannot be redirected either
    result = world.command(gw1, "redirect", {"sa_id": sa.sa_id, "to": GW2})
    assert result["redirected"] == [] and "REDIRECT_SUPPORTED" in result["skipped"][0]["reason"]


def test_established_client_redirected_by_informational_moves_make_before_break(
    world: World, tmp_path: Path
) -> None:
    client, gw1, gw2 = _trio(world, tmp_path)
    assert world.command(client, "up", {"name": "office"})["ok"] is True
    (old,) = client.sas()
    assert str(old.remote.ip) == GW1
    result = world.command(gw1, "redirect", {"name": "office", "to": GW2})
    assert result == {"redirected": [gw1.sas()[0].sa_id], "skipped": [], "to": GW2}
    world.run_while(lambda: len(client.sas()) != 1 or not any(sa.established for sa in gw2.sas()))
    assert gw1.sas() == []
    (new,) = client.sas()
    assert str(new.remote.ip) == GW2 and new.sa_id != old.sa_id
    # make-before-break: the new Child SA was in the client's data plane before the old one left
    old_spi, new_spi = old.children[0].spi_in, new.children[0].spi_in
    world.run_for(REKEY_LINGER + 1)  # the old one keeps decrypting a little (daemon.runtime)
    ops = [(c.op, c.spi) for c in client.sink.calls if c.op in ("install", "retire", "remove")]
    assert ops.index(("install", new_spi)) < ops.index(("retire", old_spi)) < ops.index(("remove", old_spi))
    assert list(client.sink.installed) == [new_spi]
    follow = decode_message(_init_requests(world, GW2)[0].datagram.payload)
    came_from = follow.notify(NotifyType.REDIRECTED_FROM)
    assert came_from is not None and str(came_from.redirect_data().gateway) == GW1
    assert client.runtime.reconnect.status(world.clock.now()) == {}


def test_a_client_that_does_not_leave_is_deleted_after_the_timeout(world: World, tmp_path: Path) -> None:
    client, gw1, _gw2 = _trio(world, tmp_path, gw1={"settings": {"redirect": {"timeout": 5}}})
    assert world.command(client, "up", {"name": "office"})["ok"] is True
    world.net.cut(GW2)  # the client cannot reach the new gateway, so it stays
    world.command(gw1, "redirect", {"name": "office", "to": GW2})
    world.run_for(4)
    assert len(gw1.sas()) == 1
    world.run_for(2)
    assert gw1.sas() == []


def test_redirect_loop_between_two_gateways_is_stopped_by_the_limit(world: World, tmp_path: Path) -> None:
    client, gw1, gw2 = _trio(
        world, tmp_path, gw1=_static(GW2), gw2=_static(GW1), client_child={"start_action": "none"}
    )
    result = world.command(client, "up", {"name": "office"})
    assert result["ok"] is False
    assert "more than 5 redirects in 60 s (a redirect loop?)" in result["message"]
    world.run_for(30)
    inits = world.net.requests(ExchangeType.IKE_SA_INIT, src=I_ADDR)
    assert len(inits) == 1 + REDIRECT_LIMIT  # the first, then five redirects followed
    assert client.runtime.redirects.stopped_loops == ["office"]
    assert client.sas() == [] and gw1.sas() == [] and gw2.sas() == []
    assert client.runtime.reconnect.status(world.clock.now()) == {}
    world.run_for(120)  # and nothing starts again
    assert len(world.net.requests(ExchangeType.IKE_SA_INIT, src=I_ADDR)) == len(inits)


def test_drain_moves_established_clients_and_turns_new_ones_away_until_stopped(
    world: World, tmp_path: Path
) -> None:
    client, gw1, gw2 = _trio(world, tmp_path)
    assert world.command(client, "up", {"name": "office"})["ok"] is True
    result = world.command(gw1, "drain", {"to": GW2})
    assert result["draining"] == GW2 and len(result["redirected"]) == 1
    world.run_while(lambda: len(gw1.sas()) > 0 or not any(sa.established for sa in gw2.sas()))
    # a new client (here: the same one again) is redirected at IKE_SA_INIT while draining
    world.command(client, "down", {"name": "office"})
    client.runtime.initiate("office")
    _up_at(world, client, GW2)
    assert gw1.sas() == []
    # the drain ends: served here again
    assert world.command(gw1, "drain", {"stop": True})["draining"] is None
    world.command(client, "down", {"name": "office"})
    client.runtime.initiate("office")
    _up_at(world, client, GW1)


def test_least_loaded_sends_a_new_client_to_the_gateway_with_fewer_sas(world: World, tmp_path: Path) -> None:
    load = tmp_path / "load.json"
    load.write_text(json.dumps({GW2: 0}))
    rule = {"rule": "least-loaded", "gateways": [GW1, GW2], "load_file": str(load)}
    client, gw1, gw2 = _trio(world, tmp_path, gw1={"settings": {"redirect": rule}})
    client.runtime.initiate("office")  # GW1 has 0 SAs, GW2 0: a tie stays here
    _up_at(world, client, GW1)
    client.runtime.initiate("office")  # now GW1 has 1, GW2 0: the second goes there
    _up_at(world, client, GW2)
    assert len(gw1.sas()) == 1 and len(gw2.sas()) == 1
    for gw in (gw1, gw2):  # the load the policy compares, counted without listing the SAs
        engine = gw.runtime.engine
        assert engine.served() == sum(1 for sa in engine.list_sas() if sa.established) == 1
    load.write_text(json.dumps({GW2: 7}))  # GW2 busier: served here again
    client.runtime.initiate("office")
    world.run_while(lambda: len(gw1.sas()) < 2)
    assert len(gw2.sas()) == 1


def test_failover_to_the_next_remote_address_when_the_gateway_dies(world: World, tmp_path: Path) -> None:
    pools = {"pools": {"vpn": {"addrs": "10.9.0.0/24"}}}  # one pool per gateway (no shared store)
    gw_side = {**pools, "connections": {"office": {"pools": ["vpn"]}}}
    client, _gw1, gw2 = _trio(
        world,
        tmp_path,
        client={"connections": {"office": {"dpd_delay": 5, "vips": ["0.0.0.0"]}}},
        client_child={"dpd_action": "restart"},
        gw1=gw_side,
        gw2=gw_side,
        settings={"retransmit_timeout": 1, "retransmit_base": 1.0, "retransmit_tries": 2},
    )
    assert world.command(client, "up", {"name": "office"})["ok"] is True
    (first,) = client.sas()
    assert first.virtual_ips
    world.net.cut(GW1)
    died = world.clock.now()
    _up_at(world, client, GW2, within=60)
    # DPD after 5 s of silence, 1 + 1 + 1 s of retransmissions, a 1 s back-off, one setup
    assert world.clock.now() - died <= 5 + 3 + 1 + 2
    (second,) = client.sas()
    assert [sa.established for sa in gw2.sas()] == [True]
    sa = client.runtime.engine.sa(second.sa_id)
    assert sa is not None and sa.vips_asked == first.virtual_ips  # its old address asked back
    # round robin: GW2 dies in turn, GW1 is back: the client returns there
    world.net.heal()
    world.net.cut(GW2)
    _up_at(world, client, GW1, within=60)
    assert [str(s.remote.ip) for s in client.sas() if s.state is IkeSaState.ESTABLISHED] == [GW1]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ({"name": "office", "to": "not a name!"}, "bad gateway 'not a name!'"),
        ({"name": "office", "to": "x" * 254}, "bad gateway"),
        ({"name": "lab", "to": GW2}, "no connection named 'lab'"),
        ({"sa_id": 99, "to": GW2}, "no established IKE SA #99"),
    ],
)
def test_redirect_command_errors_name_the_cause(
    world: World, tmp_path: Path, args: dict[str, Any], words: str
) -> None:
    client, gw1, _gw2 = _trio(world, tmp_path)
    assert world.command(client, "up", {"name": "office"})["ok"] is True
    with pytest.raises(UsageError) as info:
        world.command(gw1, "redirect", args)
    assert words in str(info.value)
    with pytest.raises(UsageError, match="bad gateway"):
        world.command(gw1, "drain", {"to": "-bad-"})
    assert gw1.runtime.redirects.draining is None


def test_a_client_moved_by_informational_and_redirected_again_in_ike_sa_init_leaves_once(
    world: World, tmp_path: Path
) -> None:
    client, gw1, gw2 = _trio(world, tmp_path)
    assert world.command(client, "up", {"name": "office"})["ok"] is True
    world.command(gw2, "drain", {"to": GW1})  # GW2 sends every newcomer back
    (old,) = client.sas()
    world.command(gw1, "redirect", {"name": "office", "to": GW2})
    world.run_while(
        lambda: (
            any(s.sa_id == old.sa_id for s in client.sas())
            or not client.sas()
            or not client.sas()[0].established
        ),
        within=60,
    )
    # GW1 -> (INFORMATIONAL) GW2 -> (IKE_SA_INIT) GW1: the new SA replaces the old one, which is deleted
    world.run_for(5)
    (sa,) = client.sas()
    assert sa.established and str(sa.remote.ip) == GW1 and sa.sa_id != old.sa_id
    assert len(gw1.sas()) == 1 and gw2.sas() == []
    assert len(client.sink.installed) == 1
    assert len(world.net.requests(ExchangeType.IKE_SA_INIT, src=I_ADDR)) == 3


def test_an_fqdn_gateway_is_resolved_and_one_that_does_not_resolve_fails_up(
    world: World, tmp_path: Path
) -> None:
    names = {"vpn2.example.org": GW2}
    client, gw1, gw2 = _trio(
        world,
        tmp_path,
        client={"connections": {"office": {"remote_addrs": [GW1], "redirect_allow": ["vpn2.example.org"]}}},
        gw1=_static("vpn2.example.org"),
    )
    asked: list[str] = []

    def resolve(name: str, then: Callable[[str | None], None]) -> None:
        asked.append(name)
        then(names.get(name))

    client.runtime.redirects.resolve = resolve
    assert world.command(client, "up", {"name": "office"})["ok"] is True
    assert asked == ["vpn2.example.org"]
    assert [str(sa.remote.ip) for sa in client.sas()] == [GW2] and len(gw2.sas()) == 1
    # the name no longer resolves: `up` says so
    world.command(client, "down", {"name": "office"})
    del names["vpn2.example.org"]
    result = world.command(client, "up", {"name": "office"})
    assert result["ok"] is False and result["message"] == "redirect gateway vpn2.example.org does not resolve"
    assert client.sas() == [] and gw1.sas() == []
