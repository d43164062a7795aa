"""One gateway proposal set that accepts the built-in clients' defaults at once.

The gateway offers pyipsec's ``default`` (modern suites) plus, through the named legacy opt-in,
Windows' AES-CBC/SHA-1/MODP-1024; its ESP proposals accept the clients both without PFS and
with it (a second proposal with the groups), so PFS is optional on the Child SA.
"""

from __future__ import annotations

import pytest

from pyipsec.errors import ConfigError
from pyipsec.iana.ikev2 import ProtocolId
from pyipsec.ike.events import ChildSaInstalled, IkeSaEstablished
from pyipsec.ike.proposal_text import format_chosen, parse_proposals
from tests.support.engines import I_ADDR, R_ADDR, EnginePair, ike, psk_connection

GATEWAY_IKE = "default, aes256-sha1-modp1024, aes256-sha256-modp1024"
GATEWAY_ESP = (
    "default, aes256-sha1, aes256gcm16-modp2048-modp4096-ecp256-x25519,"
    " aes256-sha256-sha1-modp2048-modp4096-ecp256-x25519-modp1024"
)

CLIENTS = {
    # client: (its IKE proposal, its ESP proposal; the group applies to rekeys, not to IKE_AUTH)
    "windows": ("aes256-sha1-modp1024", "aes256-sha1-modp1024"),
    "apple": ("aes256-sha256-modp2048", "aes256-sha256-modp2048"),
    "android": ("aes256gcm16-prfsha512-modp4096-x25519", "aes256gcm16-x25519"),
    "strongswan-app": ("aes256gcm16-chacha20poly1305-prfsha256-x25519-ecp256", "aes256gcm16-x25519"),
}


@pytest.mark.parametrize("client", list(CLIENTS))
def test_gateway_accepts_the_client_and_its_pfs_rekey(client: str) -> None:
    client_ike, client_esp = CLIENTS[client]
    i = psk_connection(
        "vpn",
        local_id=f"{client}.test",
        remote_id="gw.test",
        local_addr=I_ADDR,
        remote_addr=R_ADDR,
        proposals=client_ike,
        esp_proposals=client_esp,
    )
    r = psk_connection(
        "rw",
        local_id="gw.test",
        remote_id=f"{client}.test",
        local_addr=R_ADDR,
        remote_addr=I_ADDR,
        proposals=GATEWAY_IKE,
        esp_proposals=GATEWAY_ESP,
        local_ts="10.2.0.0/16",
        remote_ts="10.1.0.0/16",
    )
    p = EnginePair(i, [r])
    p.initiate()
    p.run(until=10)
    (ei,) = p.i.of(IkeSaEstablished)
    assert format_chosen(ei.proposal).split("-")[0] == client_ike.split("-")[0]  # the client's first cipher
    (first,) = p.i.of(ChildSaInstalled)
    assert not any(g in format_chosen(first.proposal) for g in ("modp", "ecp", "x25519"))  # no KE in IKE_AUTH
    # the client rekeys its Child SA with PFS: a KE payload for its group
    (sa,) = p.i.engine.sas()
    (child_id,) = sa.children
    p.i.rekey_child(sa.sa_id, child_id)
    p.run(until=p.now + 10)
    rekeyed = p.i.of(ChildSaInstalled)[-1]
    assert rekeyed.replaces == child_id
    assert client_esp.split("-")[-1] in format_chosen(rekeyed.proposal)  # PFS with the client's group


def test_legacy_windows_suite_is_refused_without_the_opt_in() -> None:
    with pytest.raises(ConfigError, match="legacy"):
        parse_proposals("aes256-sha1-modp1024", protocol=ProtocolId.IKE)
    assert ike("aes256-sha1-modp1024")  # the test helper opts in by name
