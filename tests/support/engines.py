"""Two IKE engines linked in memory under a virtual clock (DESIGN.md §8).

``EnginePair`` plays the network: datagrams one engine emits are queued for the other, and
a ``Link`` policy may drop, duplicate or reorder them. ``run()`` delivers and advances the
clock to the next deadline until nothing is left to do, so a scenario reads as a flow (the
playbook): act on one side (``p.i.rekey_ike(sa_id)``, ``p.r.terminate_child(sa_id, child_id)``,
…, each at the pair's current time, its output put on the link), run, assert on the events
and SA states.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from ipaddress import ip_address

from pyipsec.crypto.rand import SeededRandom
from pyipsec.iana.ikev2 import ProtocolId
from pyipsec.ike.config import AuthClass, AuthConfig, ChildConfig, ConnectionConfig, EngineConfig, Identity
from pyipsec.ike.credentials import MemoryCredentials, SharedSecret
from pyipsec.ike.engine import IkeEngine, Output
from pyipsec.ike.events import ChildSaSignal, Event, LookupNeeded
from pyipsec.ike.lookups import Answer, Lookup
from pyipsec.ike.proposal import ProposalSpec
from pyipsec.ike.proposal_text import parse_proposals
from pyipsec.net.addr import Datagram, Endpoint, IPAddress
from pyipsec.wire.payloads.ts import TrafficSelector
from tests.support.pki import NOW

I_ADDR, R_ADDR = "192.0.2.1", "192.0.2.2"
WALL = NOW.timestamp()


def ike(text: str) -> tuple[ProposalSpec, ...]:
    return parse_proposals(text, protocol=ProtocolId.IKE, allow_legacy=True)


def esp(text: str) -> tuple[ProposalSpec, ...]:
    return parse_proposals(text, protocol=ProtocolId.ESP, allow_legacy=True)


def psk_connection(
    name: str,
    *,
    local_id: str,
    remote_id: str,
    local_addr: str,
    remote_addr: str,
    proposals: str = "aes256gcm16-prfsha256-x25519",
    esp_proposals: str = "aes256gcm16",
    local_ts: str = "10.1.0.0/16",
    remote_ts: str = "10.2.0.0/16",
    **kw: object,
) -> ConnectionConfig:
    child = ChildConfig(
        name="net",
        local_ts=(TrafficSelector.from_network(local_ts),),
        remote_ts=(TrafficSelector.from_network(remote_ts),),
        esp_proposals=esp(esp_proposals),
    )
    return ConnectionConfig(
        name=name,
        local_addrs=(local_addr,),
        remote_addrs=(remote_addr,),
        proposals=ike(proposals),
        local=AuthConfig(AuthClass.PSK, Identity.fqdn(local_id)),
        remote=AuthConfig(AuthClass.PSK, Identity.fqdn(remote_id)),
        children=(child,),
        **kw,  # type: ignore[arg-type]
    )


@dataclass
class Link:
    """What the simulated network does to each datagram (seeded)."""

    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    seed: int = 1
    drop_if: Callable[[Datagram], bool] | None = None
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)


@dataclass
class Side:
    """One engine of the pair, and the playbook's verbs for it: each calls the engine's API at
    the pair's current time and puts what it sends on the link."""

    engine: IkeEngine
    addr: str
    pair: EnginePair
    events: list[Event] = field(default_factory=list)
    inbox: list[Datagram] = field(default_factory=list)
    # the host's side of lookups (RADIUS, revocation): None leaves them in ``pending``
    answer: Callable[[Lookup], Answer] | None = None
    pending: list[LookupNeeded] = field(default_factory=list)

    def of(self, kind: type) -> list[Event]:
        return [e for e in self.events if isinstance(e, kind)]

    def _do(self, out: Output) -> None:
        self.pair.emit(self, out)

    def initiate(self, connection: str) -> int:
        sa_id, out = self.engine.initiate(connection, self.pair.now)
        self._do(out)
        return sa_id

    def initiate_child(self, sa_id: int, child: str) -> None:
        self._do(self.engine.initiate_child(sa_id, child, self.pair.now))

    def rekey_ike(self, sa_id: int) -> None:
        self._do(self.engine.rekey_ike(sa_id, self.pair.now))

    def rekey_child(self, sa_id: int, child_id: int) -> None:
        self._do(self.engine.rekey_child(sa_id, child_id, self.pair.now))

    def reauthenticate(self, sa_id: int) -> None:
        self._do(self.engine.reauthenticate(sa_id, self.pair.now))

    def check_liveness(self, sa_id: int) -> None:
        self._do(self.engine.check_liveness(sa_id, self.pair.now))

    def terminate(self, sa_id: int) -> None:
        self._do(self.engine.terminate(sa_id, self.pair.now))

    def terminate_child(self, sa_id: int, child_id: int) -> None:
        self._do(self.engine.terminate_child(sa_id, child_id, self.pair.now))

    def update_sa_address(self, sa_id: int, local: Endpoint, *, remote: IPAddress | None = None) -> None:
        self._do(self.engine.update_sa_address(sa_id, local, self.pair.now, remote=remote))

    def set_local_addresses(self, addrs: Sequence[IPAddress]) -> None:
        self._do(self.engine.set_local_addresses(addrs, self.pair.now))

    def handle_signal(self, signal: ChildSaSignal) -> None:
        self._do(self.engine.handle_signal(signal, self.pair.now))

    def reply(self, needed: LookupNeeded, answer: Answer) -> None:
        """Answer a lookup now (the playbook's "the RADIUS server answers")."""
        self._do(self.engine.answer(needed.ticket, answer, self.pair.now))

    def timer(self) -> None:
        self._do(self.engine.handle_timer(self.pair.now))


class EnginePair:
    def __init__(
        self,
        i_conn: ConnectionConfig,
        r_conns: list[ConnectionConfig],
        *,
        i_creds: MemoryCredentials | None = None,
        r_creds: MemoryCredentials | None = None,
        psk: bytes = b"correct horse battery staple",
        link: Link | None = None,
        responder_settings: dict[str, object] | None = None,
        wall: float = WALL,
    ) -> None:
        self.now = 0.0
        self.link = link or Link()
        i_creds = i_creds or MemoryCredentials([SharedSecret(psk)])
        r_creds = r_creds or MemoryCredentials([SharedSecret(psk)])
        self.i = Side(
            IkeEngine(
                EngineConfig({i_conn.name: i_conn}), i_creds, rng=SeededRandom(1), wall_clock=lambda: wall
            ),
            I_ADDR,
            self,
        )
        r_config = EngineConfig({c.name: c for c in r_conns})
        if responder_settings:
            r_config = replace(r_config, **responder_settings)  # type: ignore[arg-type]
        self.r = Side(
            IkeEngine(r_config, r_creds, rng=SeededRandom(2), wall_clock=lambda: wall), R_ADDR, self
        )
        self.sent: list[Datagram] = []
        self.i_conn = i_conn

    def emit(self, src: Side, out: Output) -> None:
        """Record ``src``'s events and put its datagrams on the link."""
        src.events.extend(out.events)
        for needed in (e for e in out.events if isinstance(e, LookupNeeded)):
            if src.answer is None:
                src.pending.append(needed)
            else:
                self.emit(src, src.engine.answer(needed.ticket, src.answer(needed.lookup), self.now))
        for d in out.datagrams:
            self.sent.append(d)
            dst = self.r if str(d.remote.ip) == self.r.addr else self.i
            if self.link.drop_if is not None and self.link.drop_if(d):
                continue
            if self.link.rng.random() < self.link.loss:
                continue
            copies = 2 if self.link.rng.random() < self.link.duplicate else 1
            for _ in range(copies):
                if dst.inbox and self.link.rng.random() < self.link.reorder:
                    dst.inbox.insert(0, d)
                else:
                    dst.inbox.append(d)

    def initiate(self, name: str | None = None) -> int:
        return self.i.initiate(name or self.i_conn.name)

    def deliver(self) -> bool:
        moved = False
        for side in (self.r, self.i):
            while side.inbox:
                d = side.inbox.pop(0)
                # the receiver sees the sender's endpoints the other way round
                seen = Datagram(local=d.remote, remote=d.local, payload=d.payload)
                self.emit(side, side.engine.receive_datagram(seen, self.now))
                moved = True
        return moved

    def run(self, *, until: float = 600.0) -> None:
        """Deliver and fire timers until quiet, or until the virtual clock passes ``until``."""
        while True:
            while self.deliver():
                pass
            deadlines = [
                d for d in (self.i.engine.next_deadline(), self.r.engine.next_deadline()) if d is not None
            ]
            if not deadlines:
                return
            nxt = max(min(deadlines), self.now)
            if nxt > until:
                return
            self.now = nxt
            for side in (self.i, self.r):
                side.timer()


def endpoint(addr: str, port: int = 500) -> Endpoint:
    return Endpoint(ip_address(addr), port)
