"""``status`` says when each SA rekeys, expires or is reauthenticated, like swanctl --list-sas."""

from __future__ import annotations

from dataclasses import replace

from pyipsec.cli.sas import format_status
from pyipsec.daemon.status import ike_sa_status
from tests.scenario.test_handshake_psk import pair


def test_rekey_reauth_and_expiry_times_are_shown() -> None:
    p = pair(i_rekey_time=1000.0, i_reauth_time=2000.0, r_reauth_time=2000.0)
    conn = p.i.engine.config.connections["office"]
    child = replace(conn.children[0], rekey_time=300.0, life_time=400.0)
    p.i.engine.config.connections["office"] = replace(conn, children=(child,))  # type: ignore[index]
    p.initiate()
    p.run(until=5)
    (sa_i,) = p.i.engine.list_sas()
    (sa_r,) = p.r.engine.list_sas()
    st = ike_sa_status(sa_i, p.now + 10)
    assert st["original_initiator"] is True
    assert isinstance(st["rekey_in"], int) and 890 <= st["rekey_in"] <= 990
    # its own 2000 s, or earlier: 81-90 % of the gateway's AUTH_LIFETIME of 2000 s (RFC 4478)
    assert isinstance(st["reauth_in"], int) and 1610 <= st["reauth_in"] <= 1990
    (ch,) = st["children"]  # type: ignore[misc]
    assert 260 <= ch["rekey_in"] <= 290 and ch["expires_in"] == 390  # type: ignore[index]
    gw = ike_sa_status(sa_r, p.now)
    assert gw["original_initiator"] is False and isinstance(gw["reauth_in"], int)
    assert gw["reauth_in"] > 2000  # the gateway's deadline: the interval and a grace period
    text = format_status({"ike_sas": [st, gw]})
    assert "rekeying in" in text and "reauthentication in" in text and "reauthentication due in" in text
    assert "expires in 390s" in text
