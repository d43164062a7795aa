"""Z6: EAP-TLS — gateway messages → ``EapTlsPeer``, client messages → ``EapTlsServer``, and an
honest conversation with one packet spoiled (``_eap``). The certificates come from
``tests.support.pki`` (made once per process, valid now: OpenSSL checks the clock).

"Completed" for the peer: the TLS handshake ran (a TLS version was negotiated) and the keys
were exported (a Session-Id and a 64-octet EMSK exist alongside the MSK).
"""

from __future__ import annotations

from pyipsec.ike.eap.base import EapPeer
from pyipsec.ike.eap.tls import EapTlsPeer
from tests.fuzz.targets._eap import Method, check_method
from tests.unit.eap._tls_support import peer, server


def _completed(p: EapPeer, sent: list[bytes]) -> bool:
    assert isinstance(p, EapTlsPeer)
    return p.tls_version is not None and bool(p.session_id) and len(p.emsk) == 64


METHOD = Method(peer=peer, server=server, completed=_completed)


def check(data: bytes) -> None:
    check_method(METHOD, data)
