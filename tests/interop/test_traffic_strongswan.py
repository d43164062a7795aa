"""Traffic through pyipsec ↔ strongSwan tunnels: ping and a checked bulk TCP transfer.

strongSwan runs its kernel-libipsec data plane (userspace ESP over TUN, always UDP 4500);
pyipsec runs its own data plane process. Both roles, three suites.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.interop.conftest import SitePair
from tests.interop.test_ike_strongswan import _py_established, connect_site, make_creds
from tests.support.pyipsecd import PyIpsecDaemon, pyipsec_factory  # noqa: F401 - fixture
from tests.support.strongswan import CharonFactory
from tests.support.traffic import bulk_tcp

pytestmark = pytest.mark.interop

SUITES = [
    ("aes256gcm16-prfsha256-ecp256", "aes256gcm16"),
    ("aes256-sha256-modp2048", "aes256-sha256"),
    ("chacha20poly1305-prfsha256-x25519", "chacha20poly1305"),
]


@pytest.mark.parametrize(("ike", "esp"), SUITES, ids=[s[1] for s in SUITES])
@pytest.mark.parametrize("initiator", ["pyipsec", "strongswan"])
def test_ping_and_bulk_tcp_through_pyipsec_strongswan_tunnel(
    site_pair: SitePair,
    charon_factory: CharonFactory,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
    tmp_path: Path,
    ike: str,
    esp: str,
    initiator: str,
) -> None:
    left, right = site_pair.left, site_pair.right  # pyipsec left, charon right
    charon, py = connect_site(
        site_pair, charon_factory, pyipsec_factory, tmp_path, make_creds("psk"), ike, esp, initiator
    )
    charon.wait_for_sa("site", child="net")
    py.wait_for(_py_established)

    assert left.ns.wait_ping(right.inner, timeout=5), py.log_text()[-3000:]
    assert right.ns.ping(left.inner, count=3)
    bulk_tcp(left.ns, right.ns, right.inner, tmp_path)
    bulk_tcp(right.ns, left.ns, left.inner, tmp_path)

    (sa,) = py.status()
    (child,) = sa["children"]  # type: ignore[misc]
    traffic = child["traffic"]  # type: ignore[index]
    assert traffic["packets_in"] > 1000 and traffic["packets_out"] > 1000, traffic
    assert traffic["integrity_failures"] == 0 and traffic["replay_drops"] == 0
