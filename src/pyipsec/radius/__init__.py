"""RADIUS client for the gateway: EAP relay (RFC 2865, 2869, 3579), accounting (RFC 2866).

The gateway's ``auth = "eap-radius"`` passes each EAP message of IKE_AUTH to
:meth:`RadiusClient.eap` and gets an :class:`EapRelayAnswer` back (CHALLENGE to relay, ACCEPT
with the 64-octet MSK from the MS-MPPE keys, REJECT, or TIMEOUT); :meth:`RadiusClient.account`
reports sessions (RFC 2866). ``model`` holds the settings and results, ``codec`` the pure
packet work (authenticators, MPPE key decryption) on pyrad and the ``dictionary`` shipped here,
``client`` the asyncio UDP I/O with retransmission and failover. This package is independent
of the IKE engine, the daemon and the configuration.
"""

from pyipsec.radius.client import DEFAULT_DEAD_TIME, RadiusClient
from pyipsec.radius.model import (
    AccountingRecord,
    AcctStatus,
    EapRelayAnswer,
    RadiusAnswerKind,
    RadiusServer,
    RadiusSettings,
    RadiusStats,
    ServerStats,
    TerminateCause,
)

__all__ = [
    "DEFAULT_DEAD_TIME",
    "AccountingRecord",
    "AcctStatus",
    "EapRelayAnswer",
    "RadiusAnswerKind",
    "RadiusClient",
    "RadiusServer",
    "RadiusSettings",
    "RadiusStats",
    "ServerStats",
    "TerminateCause",
]
