"""EAP inside IKEv2 (RFC 7296 §2.16): sans-I/O EAP conversations for the gateway and the client.

See :mod:`pyipsec.ike.eap.base` for the interfaces and :mod:`pyipsec.ike.eap.mschapv2` for
EAP-MSCHAPv2, the method of the built-in Windows, Apple and Android IKEv2 clients;
:mod:`pyipsec.ike.eap.tls` for EAP-TLS (RFC 5216, RFC 9190) with client certificates; and
:mod:`pyipsec.ike.eap.choose` for the client that runs whichever method the gateway asks.
"""

from __future__ import annotations

from pyipsec.ike.eap.base import (
    MSK_LEN,
    EapOutcome,
    EapPeer,
    EapServer,
    FailureRecorder,
    UserStore,
)
from pyipsec.ike.eap.choose import EapMethodPeer
from pyipsec.ike.eap.mschapv2 import MsChapV2Peer, MsChapV2Server
from pyipsec.ike.eap.tls import EapTlsPeer, EapTlsServer, TlsVersion

__all__ = [
    "MSK_LEN",
    "EapOutcome",
    "EapMethodPeer",
    "EapPeer",
    "EapServer",
    "FailureRecorder",
    "MsChapV2Peer",
    "MsChapV2Server",
    "EapTlsPeer",
    "EapTlsServer",
    "TlsVersion",
    "UserStore",
]
