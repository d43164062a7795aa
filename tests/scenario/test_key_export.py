"""The engine hands out IKE SA keys (``IkeKeysDerived``) only when asked, and then for every
IKE SA it keys: after IKE_SA_INIT and after an IKE SA rekey (``save_keys``)."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from pyipsec.ike.events import IkeKeysDerived, IkeSaEstablished
from tests.support.engines import I_ADDR, R_ADDR, EnginePair, psk_connection


def _pair(*, export: bool) -> EnginePair:
    i = psk_connection(
        "site", local_id="moon.example", remote_id="sun.example", local_addr=I_ADDR, remote_addr=R_ADDR
    )
    r = psk_connection(
        "site", local_id="sun.example", remote_id="moon.example", local_addr=R_ADDR, remote_addr=I_ADDR
    )
    p = EnginePair(i, [r], responder_settings={"export_ike_keys": export})
    p.i.engine.reconfigure(replace(p.i.engine.config, export_ike_keys=export))
    return p


def test_no_keys_leave_the_engine_unless_asked() -> None:
    p = _pair(export=False)
    p.initiate()
    p.run(until=5)
    assert p.i.of(IkeSaEstablished) and p.r.of(IkeSaEstablished)
    assert p.i.of(IkeKeysDerived) == [] and p.r.of(IkeKeysDerived) == []


def test_keys_of_the_first_and_the_rekeyed_ike_sa(caplog: pytest.LogCaptureFixture) -> None:
    p = _pair(export=True)
    p.initiate()
    p.run(until=5)
    (ki,) = p.i.of(IkeKeysDerived)
    (kr,) = p.r.of(IkeKeysDerived)
    (sa_i,) = p.i.engine.sas()
    (sa_r,) = p.r.engine.sas()
    # both ends report the same SA (SPIs) with the keys they protect it with
    assert (ki.spi_i, ki.spi_r) == (kr.spi_i, kr.spi_r) == (sa_i.spi_i, sa_i.spi_r)
    assert ki.keys == kr.keys == sa_i.keys == sa_r.keys
    assert ki.sa_id == sa_i.sa_id and ki.connection == kr.connection == "site"
    assert ki.proposal == sa_i.proposal
    # the keys were out before IKE_AUTH finished: the initiator's come before its establishment
    assert p.i.events.index(ki) < p.i.events.index(p.i.of(IkeSaEstablished)[0])

    with caplog.at_level(logging.DEBUG):
        p.i.rekey_ike(sa_i.sa_id)
        p.run(until=p.now + 10)
    new_i = p.i.of(IkeKeysDerived)[1:]
    new_r = p.r.of(IkeKeysDerived)[1:]
    assert len(new_i) == len(new_r) == 1
    (made,) = [e for e in p.i.of(IkeSaEstablished) if e.rekeyed_from == sa_i.sa_id]
    (sa_new,) = p.i.engine.sas()
    assert (new_i[0].spi_i, new_i[0].spi_r) == (made.spi_i, made.spi_r) == (new_r[0].spi_i, new_r[0].spi_r)
    assert new_i[0].keys == new_r[0].keys == sa_new.keys != ki.keys
    # the events never show a key (repr), and nothing logged one
    for e in (ki, kr, new_i[0], new_r[0]):
        for key in (e.keys.sk_ei, e.keys.sk_er, e.keys.sk_d, e.keys.sk_pi):
            assert key.hex() not in repr(e) and key.hex() not in caplog.text
