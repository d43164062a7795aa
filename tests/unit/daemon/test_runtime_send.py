"""The runtime's ordering of data-plane updates and IKE datagrams (make-before-break).

A message that lets the peer use a new Child SA must leave only after the data plane holds
that SA: events are applied before datagrams are sent; IKE on port 500 (our own socket) waits
for a data-plane barrier when SA updates precede it; later datagrams queue behind held ones.
Driven through ``Runtime.apply`` with made-up engine outputs, a recording sink and the memory
network, under the virtual clock.
"""

from __future__ import annotations

from ipaddress import ip_address
from pathlib import Path

import pytest

from pyipsec.childsa import ChildSaSpec, EspMode
from pyipsec.daemon.runtime import BARRIER_TIMEOUT, REKEY_LINGER, RETIRE_DRAIN
from pyipsec.iana.ikev2 import ProtocolId
from pyipsec.iana.transforms import EncrId, IntegId
from pyipsec.ike.engine import Output
from pyipsec.ike.events import (
    ChildSaInstalled,
    ChildSaOutboundActivated,
    ChildSaRemoved,
    Replacement,
)
from pyipsec.ike.proposal import ChosenProposal
from pyipsec.net.addr import Datagram, Endpoint
from pyipsec.wire.payloads.ts import TrafficSelector
from tests.support.daemons import I_ADDR, Node, World, psk_configs

LOCAL, REMOTE = ip_address(I_ADDR), ip_address("10.0.0.2")
SPI_OLD, SPI_NEW = b"\x00\x00\x10\x00", b"\x00\x00\x30\x00"
GCM = ChosenProposal(1, ProtocolId.ESP, b"\x00\x00\x20\x00", (EncrId.ENCR_AES_GCM_16, 256))


def _dgram(port: int, tag: bytes) -> Datagram:
    return Datagram(Endpoint(LOCAL, port), Endpoint(REMOTE, port), tag)


def _installed(spi_in: bytes = SPI_OLD, child_id: int = 1, *, active: bool = True) -> ChildSaInstalled:
    spec = ChildSaSpec(
        spi_in=spi_in,
        spi_out=b"\x00\x00\x20\x00",
        encr=EncrId.ENCR_AES_GCM_16,
        encr_key_bits=256,
        integ=IntegId.NONE,
        esn=False,
        mode=EspMode.TUNNEL,
        local_ts=(TrafficSelector.from_network("10.1.0.0/16"),),
        remote_ts=(TrafficSelector.from_network("10.2.0.0/16"),),
        local=Endpoint(LOCAL, 4500),
        remote=Endpoint(REMOTE, 4500),
        encap=True,
        replay_window=32,
        encr_key_in=bytes(36),
        integ_key_in=b"",
        encr_key_out=bytes(36),
        integ_key_out=b"",
        outbound_active=active,
    )
    return ChildSaInstalled(1, "office", "net", child_id, GCM, spec)


def _node(
    world: World, tmp_path: Path, *, dataplane: bool = True, barrier_delay: float | None = None
) -> Node:
    config, _ = psk_configs(tmp_path, client={"settings": {"dataplane": dataplane}})
    return world.node(config, I_ADDR, barrier_delay=barrier_delay)


def _sent(world: World) -> list[bytes]:
    return [s.datagram.payload for s in world.net.log]


def test_install_reaches_the_data_plane_before_the_nat_t_datagram(world: World, tmp_path: Path) -> None:
    node = _node(world, tmp_path)
    node.runtime.apply(Output((_dgram(4500, b"response"),), (_installed(),)))
    # IKE on 4500 goes through the (ordered) data-plane channel right behind the install
    assert node.sink.ops() == ["install", "send_ike"] and _sent(world) == [b"response"]


def test_port_500_datagram_waits_for_the_barrier_and_keeps_order(world: World, tmp_path: Path) -> None:
    node = _node(world, tmp_path)
    node.runtime.apply(Output((_dgram(500, b"response"),), (_installed(),)))
    node.runtime.apply(Output((_dgram(500, b"next"),), ()))  # no SA update, but must not overtake
    assert node.sink.ops() == ["install", "barrier"] and _sent(world) == []
    node.sink.answer_barriers()
    assert _sent(world) == [b"response", b"next"]
    node.runtime.apply(Output((_dgram(500, b"later"),), ()))  # nothing held any more: sent at once
    assert _sent(world) == [b"response", b"next", b"later"]


def test_barrier_timeout_releases_held_datagrams(world: World, tmp_path: Path) -> None:
    node = _node(world, tmp_path)  # its data plane never answers
    node.runtime.apply(Output((_dgram(500, b"response"),), (_installed(),)))
    world.clock.advance(BARRIER_TIMEOUT * 0.99)
    assert _sent(world) == []
    world.clock.advance(BARRIER_TIMEOUT * 0.01)
    assert _sent(world) == [b"response"] and world.net.log[0].at == pytest.approx(BARRIER_TIMEOUT)
    node.sink.answer_barriers()  # a late answer changes nothing
    assert _sent(world) == [b"response"]


def test_without_a_data_plane_our_own_socket_carries_the_nat_t_port(world: World, tmp_path: Path) -> None:
    node = _node(world, tmp_path, dataplane=False, barrier_delay=0.0)
    node.runtime.apply(Output((_dgram(4500, b"response"),), (_installed(),)))
    world.clock.advance(0.0)
    assert "send_ike" not in node.sink.ops() and _sent(world) == [b"response"]
    assert node.runtime.ports.stats.sent == 1


def test_a_replaced_child_stops_sending_after_its_successor_starts_and_leaves_later(
    world: World, tmp_path: Path
) -> None:
    """The old Child SA is removed in the same batch as its successor is activated (a
    reauthentication's old IKE SA deleted): the data plane must get the activation first, then
    the retirement (outbound off, inbound kept), and the removal only after the linger time."""
    node = _node(world, tmp_path, barrier_delay=0.0)
    rt, sink = node.runtime, node.sink
    rt.apply(Output((), (_installed(), _installed(SPI_NEW, 7, active=False))))
    removed = ChildSaRemoved(
        1, "office", "net", 1, SPI_OLD, b"\x00\x00\x20\x00", "deleted by peer", Replacement.REAUTH
    )
    rt.apply(Output((), (removed, ChildSaOutboundActivated(2, "office", 7, b"\x00\x00\x40\x00"))))
    assert sink.index("activate", SPI_NEW) < sink.index("retire", SPI_OLD)
    assert sink.sending == {SPI_NEW} and SPI_OLD in sink.installed  # still decrypting
    world.clock.advance(REKEY_LINGER * 0.99)
    assert "remove" not in sink.ops(SPI_OLD)
    world.clock.advance(REKEY_LINGER * 0.01)
    assert sink.ops(SPI_OLD) == ["install", "retire", "remove"] and sink.at("remove", SPI_OLD) == REKEY_LINGER


@pytest.mark.parametrize("port", [500, 4500])
def test_the_message_that_retires_an_outbound_sa_leaves_after_the_drain_time(
    world: World, tmp_path: Path, port: int
) -> None:
    """The Delete (request or response) that lets the peer remove the SA we stop sending on
    leaves RETIRE_DRAIN after the data plane confirmed the switch, so that the packets sealed
    on the old SA just before it arrive first (charon 5.9.8 drops its queued ESP for a
    reauthenticated IKE SA the moment the Delete's response arrives); later datagrams keep
    their order behind it."""
    node = _node(world, tmp_path, barrier_delay=0.01)
    rt = node.runtime
    rt.apply(Output((), (_installed(), _installed(SPI_NEW, 7, active=False))))
    world.clock.advance(0.1)
    removed = ChildSaRemoved(
        1, "office", "net", 1, SPI_OLD, b"\x00\x00\x20\x00", "deleted by peer", Replacement.REAUTH
    )
    activated = ChildSaOutboundActivated(2, "office", 7, b"\x00\x00\x40\x00")
    rt.apply(Output((_dgram(port, b"delete response"),), (removed, activated)))
    rt.apply(Output((_dgram(port, b"next"),), ()))
    start = world.clock.now()
    world.clock.advance(0.01 + RETIRE_DRAIN * 0.99)
    assert _sent(world) == []
    world.clock.advance(RETIRE_DRAIN * 0.02)
    assert _sent(world) == [b"delete response", b"next"]
    assert world.net.log[0].at - start == pytest.approx(0.01 + RETIRE_DRAIN, abs=0.01)


def test_a_child_removed_without_replacement_goes_at_once(world: World, tmp_path: Path) -> None:
    node = _node(world, tmp_path, barrier_delay=0.0)
    node.runtime.apply(Output((), (_installed(),)))
    removed = ChildSaRemoved(1, "office", "net", 1, SPI_OLD, b"\x00\x00\x20\x00", "deleted by peer")
    node.runtime.apply(Output((), (removed,)))
    assert node.sink.ops(SPI_OLD) == ["install", "remove"] and node.sink.installed == {}
