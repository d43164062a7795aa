"""Runtimes of the real daemon over a memory network under a virtual clock.

A :class:`World` holds one :class:`~tests.support.clock.FakeClock` and one
:class:`~tests.support.memnet.MemoryNetwork`; :meth:`World.node` starts a ``Runtime`` on it
with a :class:`~tests.support.recording.RecordingSink`, a :class:`FakeHostNet` and static
addresses. :meth:`World.step` delivers what is queued or, when nothing is, moves the clock to
the next timer; :meth:`World.command` runs a control command as the control socket would and
steps the world until it returns — so ``up`` returns when the SA is up, in virtual time.

:func:`psk_configs` builds a matching client and gateway (``Config``) for the tests.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from pyipsec.config.model import Config
from pyipsec.control.protocol import JsonValue
from pyipsec.crypto.rand import SeededRandom
from pyipsec.daemon.runtime import Runtime
from pyipsec.ike.info import IkeSaInfo
from tests.support.clock import FakeClock
from tests.support.memnet import MemoryNetwork
from tests.support.pki import Issued, make_ca, make_end_entity
from tests.support.recording import FakeHostNet, RecordingSink, StaticAddresses

__all__ = [
    "GW_ADDR",
    "GW_NAME",
    "I_ADDR",
    "GatewayPki",
    "Node",
    "World",
    "eap_configs",
    "eap_trees",
    "gateway_pki",
    "psk_configs",
    "psk_trees",
]

I_ADDR, GW_ADDR = "192.0.2.1", "192.0.2.2"
PSK = "0x" + "42" * 32
_T = TypeVar("_T")


@dataclass
class Node:
    runtime: Runtime
    sink: RecordingSink
    hostnet: FakeHostNet
    address: str

    def sas(self) -> list[IkeSaInfo]:
        return self.runtime.engine.list_sas()

    def child_spis(self) -> list[bytes]:
        return [c.spi_in for sa in self.sas() for c in sa.children]


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.clock = FakeClock()
        self.net = MemoryNetwork(self.clock)
        self.loop = asyncio.new_event_loop()
        self.nodes: list[Node] = []

    def node(
        self,
        config: Config,
        address: str,
        *,
        barrier_delay: float | None = 0.001,
        addresses: StaticAddresses | None = None,
        seed: int | None = None,
        config_path: Path | None = None,
    ) -> Node:
        """Start a runtime for ``config`` on the host at ``address`` (or at all of ``addresses``);
        ``config_path``: the file ``reload`` re-reads."""
        made: list[RecordingSink] = []
        net = self.net if config.settings.dataplane else None  # the data plane owns the NAT-T port
        hostnet = FakeHostNet()
        addresses = addresses or StaticAddresses(address)
        ips = tuple(str(a) for a in addresses.addrs)
        rt = Runtime(
            config,
            config_path=config_path,
            control_path=self.tmp_path / f"{address}.sock",
            clock=self.clock,
            ports=self.net.ports(*ips),
            dataplane=RecordingSink.factory(
                self.clock, made, net=net, addresses=ips, barrier_delay=barrier_delay
            ),
            hostnet=hostnet,
            addresses=addresses,
            rng=SeededRandom(len(self.nodes) + 1 if seed is None else seed),
        )
        rt.start()
        node = Node(rt, made[0], hostnet, address)
        self.nodes.append(node)
        return node

    def step(self, limit: float = float("inf")) -> bool:
        """Deliver what is queued, else fire the next timers (at most at ``limit``)."""
        return self.net.deliver() > 0 or self.clock.step(limit)

    def run_until(self, when: float) -> None:
        while self.step(when):
            pass
        self.clock.advance_to(when)

    def run_for(self, seconds: float) -> None:
        self.run_until(self.clock.now() + seconds)

    def run_while(self, cond: Callable[[], bool], *, within: float = 600.0) -> None:
        limit = self.clock.now() + within
        while cond():
            if not self.step(limit):
                raise AssertionError(f"still waiting at t={self.clock.now()}")

    def command(
        self,
        node: Node,
        cmd: str,
        args: dict[str, JsonValue] | None = None,
        *,
        progress: Callable[[dict[str, JsonValue]], None] | None = None,
        within: float = 120.0,
    ) -> Any:
        """Run a control command on ``node`` as the control socket would; step until it returns."""
        handle = node.runtime.commands.handle
        return self.drive(handle(cmd, args or {}, progress or (lambda _e: None)), within=within)

    def shutdown(self, node: Node) -> None:
        """Stop ``node`` as SIGTERM would (its Deletes leave, the host is put back)."""
        self.drive(node.runtime.shutdown())
        self.nodes.remove(node)

    def drive(self, coro: Coroutine[Any, Any, _T], *, within: float = 120.0) -> _T:
        """Run ``coro`` on the world's event loop, stepping the world while it waits."""

        async def main() -> _T:
            task = asyncio.ensure_future(coro)
            limit = self.clock.now() + within
            while True:
                for _ in range(8):  # let the coroutine run up to its next wait
                    await asyncio.sleep(0)
                if task.done():
                    return task.result()
                if not self.step(limit):
                    task.cancel()
                    raise AssertionError(f"still waiting at t={limit}")

        return self.loop.run_until_complete(main())

    def close(self) -> None:
        for n in self.nodes:
            if n.runtime.store is not None:
                n.runtime.store.close()
        self.loop.close()


def _merge(base: dict[str, Any], extra: dict[str, Any] | None) -> dict[str, Any]:
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def psk_configs(
    tmp_path: Path,
    *,
    client: dict[str, Any] | None = None,
    gateway: dict[str, Any] | None = None,
    client_child: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
) -> tuple[Config, Config]:
    """A client (``I_ADDR``) and a gateway (``GW_ADDR``) for connection ``office``, PSK, one
    child ``net``; the dictionaries are merged into the client's and gateway's TOML data."""
    c, g = psk_trees(tmp_path, client=client, gateway=gateway, client_child=client_child, settings=settings)
    return Config.model_validate(c), Config.model_validate(g)


def psk_trees(
    tmp_path: Path,
    *,
    client: dict[str, Any] | None = None,
    gateway: dict[str, Any] | None = None,
    client_child: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The TOML data of :func:`psk_configs` (to write into files, e.g. for ``reload``)."""

    def side(
        name: str, local: str, remote: str, local_id: str, remote_id: str, lts: str, rts: str
    ) -> dict[str, Any]:
        return {
            "settings": {
                "users": str(tmp_path / f"{name}.db"),
                "resolv_conf": str(tmp_path / f"{name}.resolv.conf"),
                "control_socket": str(tmp_path / f"{name}.sock"),
                **(settings or {}),
            },
            "connections": {
                "office": {
                    "local_addrs": [local],
                    "remote_addrs": [remote],
                    "local": {"auth": "psk", "id": local_id},
                    "remote": {"auth": "psk", "id": remote_id},
                    "children": {"net": {"local_ts": [lts], "remote_ts": [rts]}},
                }
            },
            "secrets": {"ike-office": {"id": [local_id, remote_id], "secret": PSK}},
        }

    c = side("client", I_ADDR, GW_ADDR, "client.example.org", "gw.example.org", "10.1.0.0/16", "10.2.0.0/16")
    g = side("gateway", GW_ADDR, I_ADDR, "gw.example.org", "client.example.org", "10.2.0.0/16", "10.1.0.0/16")
    if client_child:
        _merge(c["connections"]["office"]["children"]["net"], copy.deepcopy(client_child))
    _merge(c, copy.deepcopy(client))
    _merge(g, copy.deepcopy(gateway))
    return c, g


@dataclass(frozen=True)
class GatewayPki:
    """A CA and the gateway's certificate and key, as files under one directory."""

    ca_cert: Path
    gw_cert: Path
    gw_key: Path
    ca: Issued


GW_NAME = "gw.example.org"


def gateway_pki(directory: Path) -> GatewayPki:
    """A CA and a gateway certificate valid around the real time (the runtime reads the real
    wall clock for certificate validity)."""
    now = datetime.now(UTC)
    ca = make_ca(
        "pyipsec daemon-test CA", not_before=now - timedelta(days=1), not_after=now + timedelta(days=60)
    )
    gw = make_end_entity(
        ca, GW_NAME, dns=[GW_NAME], not_before=now - timedelta(days=1), not_after=now + timedelta(days=30)
    )
    directory.mkdir(parents=True, exist_ok=True)
    files = GatewayPki(directory / "ca.pem", directory / "gw.pem", directory / "gw.key", ca)
    files.ca_cert.write_bytes(ca.pem)
    files.gw_cert.write_bytes(gw.pem)
    files.gw_key.write_bytes(gw.key_pem())
    return files


def eap_configs(
    tmp_path: Path,
    *,
    user: str = "alice",
    password: str = "alice-secret-1",
    client: dict[str, Any] | None = None,
    gateway: dict[str, Any] | None = None,
) -> tuple[Config, Config, GatewayPki]:
    """A road warrior (``I_ADDR``, EAP-MSCHAPv2 as ``user``) and a gateway (``GW_ADDR``,
    certificate) for connection ``rw``. The gateway has no EAP users: add them with
    ``gateway={"secrets": {...}}`` or to its store (``tmp_path / "gateway.db"``)."""
    c, g, pki = eap_trees(tmp_path, user=user, password=password, client=client, gateway=gateway)
    return Config.model_validate(c), Config.model_validate(g), pki


def eap_trees(
    tmp_path: Path,
    *,
    user: str = "alice",
    password: str = "alice-secret-1",
    client: dict[str, Any] | None = None,
    gateway: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any], GatewayPki]:
    """The TOML data of :func:`eap_configs` (to write into files, e.g. for ``reload``)."""
    pki = gateway_pki(tmp_path / "pki")
    c: dict[str, Any] = {
        "settings": {"users": str(tmp_path / "client.db"), "control_socket": str(tmp_path / "client.sock")},
        "connections": {
            "rw": {
                "local_addrs": [I_ADDR],
                "remote_addrs": [GW_ADDR],
                "local": {"auth": "eap-mschapv2", "id": user},
                "remote": {"auth": "pubkey", "id": GW_NAME, "cacerts": [str(pki.ca_cert)]},
                "children": {"net": {"local_ts": ["10.1.0.0/16"], "remote_ts": ["10.2.0.0/16"]}},
            }
        },
        "secrets": {f"eap-{user}": {"id": user, "secret": password}},
    }
    g: dict[str, Any] = {
        "settings": {"users": str(tmp_path / "gateway.db"), "control_socket": str(tmp_path / "gw.sock")},
        "connections": {
            "rw": {
                "local_addrs": [GW_ADDR],
                "local": {"auth": "pubkey", "id": GW_NAME, "certs": [str(pki.gw_cert)]},
                "remote": {"auth": "eap-mschapv2"},
                "children": {"net": {"local_ts": ["10.2.0.0/16"], "remote_ts": ["10.1.0.0/16"]}},
            }
        },
        "secrets": {"private-gw": {"file": str(pki.gw_key)}},
    }
    _merge(c, copy.deepcopy(client))
    _merge(g, copy.deepcopy(gateway))
    return c, g, pki
