"""``status --json`` shows MOBIKE and the peer's additional addresses (RFC 4555 §3.6)."""

from __future__ import annotations

from ipaddress import ip_address

from pyipsec.daemon.status import ike_sa_status
from pyipsec.ike.events import IkeSaEstablished
from tests.scenario.test_handshake_psk import pair
from tests.support.engines import I_ADDR, R_ADDR


def test_status_shows_the_peer_address_list() -> None:
    p = pair()
    p.i.engine.set_local_addresses([ip_address(I_ADDR)], 0.0)
    p.r.engine.set_local_addresses([ip_address(R_ADDR), ip_address("192.0.2.22")], 0.0)
    p.initiate()
    p.run(until=5)
    assert p.i.of(IkeSaEstablished)
    (sa_i,) = p.i.engine.list_sas()
    (sa_r,) = p.r.engine.list_sas()
    st_i, st_r = ike_sa_status(sa_i, p.now), ike_sa_status(sa_r, p.now)
    assert st_i["mobike"] is True and st_i["peer_additional_addresses"] == ["192.0.2.22"]
    assert st_r["peer_additional_addresses"] == []  # NO_ADDITIONAL_ADDRESSES


def test_status_without_a_list_says_none() -> None:
    p = pair()
    p.initiate()
    p.run(until=5)
    (sa_i,) = p.i.engine.list_sas()
    assert ike_sa_status(sa_i, p.now)["peer_additional_addresses"] is None
