"""``SaIndex``: the engine's secondary indexes over its IKE SAs, so no event scans them all.

Theory of operation
-------------------
A gateway holds thousands of IKE SAs (issue 13), and several questions are asked about them on
every client's arrival or departure: which other SAs belong to the same connection and peer
(``IkeSa.same_peer``: reauthentication, INITIAL_CONTACT, a virtual IP moving over, what replaced
a Child SA), whether a connection still has SAs (the runtime, on every closed SA), which IKE SA
owns the Child SA a data-plane signal names. Each was a scan of every SA; each is a dictionary
lookup here.

The index is kept exact by the engine's touch hook (``IkeSa.touch``, called whenever a watched
attribute changes, ``connection``, ``remote_id``, ``eap_identity`` and ``original_initiator``
among them): :meth:`SaIndex.touched` re-files the SA under its current keys (O(1)),
:meth:`SaIndex.drained` re-files its Child SAs at the end of the call that touched it (O(its
children)), :meth:`SaIndex.forget` removes it when it is forgotten. :meth:`SaIndex.audit`
compares everything with a full scan (the test suite runs it after every engine call).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from pyipsec.ike.config import Identity
from pyipsec.ike.sa import IkeSa
from pyipsec.ike.state import ChildSaState

__all__ = ["SaIndex", "peer_key"]

PeerKey = tuple[str, Identity, str]
RoleKey = tuple[str, bool]


def peer_key(sa: IkeSa) -> PeerKey:
    """What ``IkeSa.same_peer`` compares: the connection, the IKE and the EAP identity."""
    return (sa.name, sa.remote_id, sa.eap_identity)


class SaIndex:
    def __init__(self) -> None:
        self._peer_key: dict[int, PeerKey] = {}
        self._by_peer: dict[PeerKey, dict[int, IkeSa]] = {}
        self._role_key: dict[int, RoleKey] = {}  # (connection, original initiator?)
        self._per_role: dict[RoleKey, int] = {}
        self._by_spi_in: dict[bytes, IkeSa] = {}  # live Child SAs by inbound SPI → their IKE SA
        self._spis_in: dict[int, set[bytes]] = {}  # IKE SA id → its keys in ``_by_spi_in``

    # -- queries ----------------------------------------------------------------------------------

    def peers(self, sa: IkeSa) -> list[IkeSa]:
        """The other SAs with ``sa``'s connection and peer, oldest first."""
        group = self._by_peer.get(peer_key(sa), {})
        return sorted((o for o in group.values() if o is not sa), key=lambda o: o.sa_id)

    def has(self, connection: str, original_initiator: bool | None = None) -> bool:
        roles = (True, False) if original_initiator is None else (original_initiator,)
        return any(self._per_role.get((connection, r), 0) for r in roles)

    def count(self, *, original_initiator: bool) -> int:
        """The SAs of every connection in that role: O(connections)."""
        return sum(n for (_, role), n in self._per_role.items() if role is original_initiator)

    def owner_of(self, spi_in: bytes) -> IkeSa | None:
        """The IKE SA of the live Child SA with inbound SPI ``spi_in``."""
        return self._by_spi_in.get(spi_in)

    # -- upkeep -----------------------------------------------------------------------------------

    def touched(self, sa: IkeSa) -> None:
        key = peer_key(sa)
        if self._peer_key.get(sa.sa_id) != key:
            self._unfile_peer(sa.sa_id)
            self._peer_key[sa.sa_id] = key
            self._by_peer.setdefault(key, {})[sa.sa_id] = sa
        role = (sa.name, sa.original_initiator)
        if self._role_key.get(sa.sa_id) != role:
            self._unfile_role(sa.sa_id)
            self._role_key[sa.sa_id] = role
            self._per_role[role] = self._per_role.get(role, 0) + 1

    def drained(self, sa: IkeSa) -> None:
        live = {c.spi_in for c in sa.children.values() if c.spi_in and c.state is not ChildSaState.CLOSED}
        if live != self._spis_in.get(sa.sa_id, set()):
            self._unfile_children(sa)
            for spi in live:
                self._by_spi_in[spi] = sa
            self._spis_in[sa.sa_id] = live

    def forget(self, sa: IkeSa) -> None:
        self._unfile_peer(sa.sa_id)
        self._unfile_role(sa.sa_id)
        self._unfile_children(sa)

    def _unfile_peer(self, sa_id: int) -> None:
        old = self._peer_key.pop(sa_id, None)
        if old is not None:
            group = self._by_peer[old]
            del group[sa_id]
            if not group:
                del self._by_peer[old]

    def _unfile_role(self, sa_id: int) -> None:
        old = self._role_key.pop(sa_id, None)
        if old is not None:
            left = self._per_role[old] - 1
            if left:
                self._per_role[old] = left
            else:
                del self._per_role[old]

    def _unfile_children(self, sa: IkeSa) -> None:
        for spi in self._spis_in.pop(sa.sa_id, ()):
            if self._by_spi_in.get(spi) is sa:
                del self._by_spi_in[spi]

    def audit(self, sas: Iterable[IkeSa]) -> list[str]:
        """Differences from a full scan of ``sas`` (every registered SA); for tests."""
        wrong: list[str] = []
        by_id = {sa.sa_id: sa for sa in sas}
        peers = {sa_id: peer_key(sa) for sa_id, sa in by_id.items()}
        filed = {sa_id: key for key, group in self._by_peer.items() for sa_id in group}
        if peers != filed or peers != self._peer_key:
            wrong.append("the peer index differs from the SAs' identities")
        roles = Counter((sa.name, sa.original_initiator) for sa in by_id.values())
        if roles != Counter(self._per_role):
            wrong.append(f"SAs per connection {dict(roles)}, counted {self._per_role}")
        for spi, owner in self._by_spi_in.items():
            if by_id.get(owner.sa_id) is not owner:
                wrong.append(f"Child SA index: SPI {spi.hex()} points at a forgotten IKE SA")
        return wrong
