"""The runtime's ordering of data-plane updates and IKE datagrams (make-before-break).

A message that lets the peer use a new Child SA must leave only after the data plane holds
that SA: events are applied before datagrams are sent; IKE on port 500 (our own socket) waits
for a data-plane barrier when SA updates precede it; later datagrams queue behind held ones.
"""

from __future__ import annotations

import asyncio
from ipaddress import ip_address
from pathlib import Path

import pytest

from pyipsec.childsa import ChildSaSpec, EspMode
from pyipsec.config.model import Config
from pyipsec.daemon import runtime as rt_mod
from pyipsec.daemon.runtime import Runtime
from pyipsec.iana.transforms import EncrId, IntegId
from pyipsec.ike.engine import Output
from pyipsec.ike.events import (
    ChildSaInstalled,
    ChildSaOutboundActivated,
    ChildSaRemoved,
    Replacement,
)
from pyipsec.net.addr import Datagram, Endpoint
from pyipsec.wire.payloads.ts import TrafficSelector

LOCAL, REMOTE = ip_address("10.0.0.1"), ip_address("10.0.0.2")


def _dgram(port: int, tag: bytes) -> Datagram:
    return Datagram(Endpoint(LOCAL, port), Endpoint(REMOTE, port), tag)


def _installed() -> ChildSaInstalled:
    spec = ChildSaSpec(
        spi_in=b"\x00\x00\x10\x00",
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
    )
    return ChildSaInstalled(1, "site", "net", 1, "aes256gcm16", spec)


class FakeDataplane:
    """Records the order of calls; :meth:`barrier` futures are resolved by the test."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.barriers: list[asyncio.Future[object]] = []

    def install(self, event: ChildSaInstalled) -> None:
        self.calls.append(("install", event.spec.spi_in))

    def activate(self, spi_in: bytes) -> None:
        self.calls.append(("activate", spi_in))

    def retire(self, spi_in: bytes) -> None:
        self.calls.append(("retire", spi_in))

    def remove(self, spi_in: bytes) -> None:
        self.calls.append(("remove", spi_in))

    def counters(self) -> dict[bytes, dict[str, int]]:
        return {}

    def update_endpoints(self, spi_in: bytes, local: Endpoint, remote: Endpoint, encap: bool) -> None:
        self.calls.append(("update", spi_in))

    def send_ike(self, d: Datagram) -> None:
        self.calls.append(("send_ike", d.payload))

    def barrier(self) -> asyncio.Future[object]:
        fut: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self.barriers.append(fut)
        self.calls.append(("barrier", len(self.barriers)))
        return fut


class FakeUdp:
    def __init__(self, calls: list[tuple[str, object]]) -> None:
        self.calls = calls

    def send(self, d: Datagram) -> None:
        self.calls.append(("udp", d.payload))


def _runtime(tmp_path: Path) -> tuple[Runtime, FakeDataplane]:
    config = Config.model_validate({"settings": {"dataplane": False, "users": str(tmp_path / "u.db")}})
    rt = Runtime(config, control_path=tmp_path / "control.sock")
    rt._loop = asyncio.get_running_loop()
    dp = FakeDataplane()
    rt.dataplane = dp
    rt._send_nat_t = dp.send_ike  # as _start_dataplane binds it: the data plane owns UDP 4500
    rt.udp = FakeUdp(dp.calls)  # type: ignore[assignment]
    return rt, dp


def test_install_reaches_the_data_plane_before_the_nat_t_datagram(tmp_path: Path) -> None:
    async def main() -> list[tuple[str, object]]:
        rt, dp = _runtime(tmp_path)
        rt._apply(Output((_dgram(4500, b"response"),), (_installed(),)))
        return dp.calls

    calls = asyncio.run(main())
    # IKE on 4500 goes through the (ordered) data-plane channel right behind the install
    assert calls == [("install", b"\x00\x00\x10\x00"), ("send_ike", b"response")]


def test_port_500_datagram_waits_for_the_barrier_and_keeps_order(tmp_path: Path) -> None:
    async def main() -> list[list[tuple[str, object]]]:
        rt, dp = _runtime(tmp_path)
        snapshots = []
        rt._apply(Output((_dgram(500, b"response"),), (_installed(),)))
        rt._apply(Output((_dgram(500, b"next"),), ()))  # no SA update, but must not overtake
        await asyncio.sleep(0)
        snapshots.append(list(dp.calls))
        dp.barriers[0].set_result(None)
        await asyncio.sleep(0)
        snapshots.append(list(dp.calls))
        rt._apply(Output((_dgram(500, b"later"),), ()))  # nothing held any more: sent at once
        snapshots.append(list(dp.calls))
        return snapshots

    held, released, later = asyncio.run(main())
    assert held == [("install", b"\x00\x00\x10\x00"), ("barrier", 1)]
    assert released == [*held, ("udp", b"response"), ("udp", b"next")]
    assert later == [*released, ("udp", b"later")]


def test_barrier_timeout_releases_held_datagrams(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rt_mod, "BARRIER_TIMEOUT", 0.05)

    async def main() -> list[tuple[str, object]]:
        rt, dp = _runtime(tmp_path)
        rt._apply(Output((_dgram(500, b"response"),), (_installed(),)))
        await asyncio.sleep(0.2)  # the data plane never answers
        return dp.calls

    calls = asyncio.run(main())
    assert calls[-1] == ("udp", b"response")


def test_a_replaced_child_stops_sending_after_its_successor_starts_and_leaves_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old Child SA is removed in the same batch as its successor is activated (a
    reauthentication's old IKE SA deleted): the data plane must get the activation first, then
    the retirement (outbound off, inbound kept), and the removal only after the linger time."""
    monkeypatch.setattr(rt_mod, "REKEY_LINGER", 0.05)

    async def main() -> list[tuple[str, object]]:
        rt, dp = _runtime(tmp_path)
        rt._children[7] = b"\x00\x00\x30\x00"
        removed = ChildSaRemoved(
            1,
            "site",
            "net",
            3,
            b"\x00\x00\x10\x00",
            b"\x00\x00\x20\x00",
            "deleted by peer",
            Replacement.REAUTH,
        )
        rt._apply(Output((), (removed, ChildSaOutboundActivated(2, "site", 7, b"\x00\x00\x40\x00"))))
        snapshot = list(dp.calls)
        await asyncio.sleep(0.2)
        return [*snapshot, ("later", None), *dp.calls[len(snapshot) :]]

    calls = asyncio.run(main())
    activate, retire = (
        calls.index(("activate", b"\x00\x00\x30\x00")),
        calls.index(("retire", b"\x00\x00\x10\x00")),
    )
    assert activate < retire < calls.index(("later", None)) < calls.index(("remove", b"\x00\x00\x10\x00"))
