"""Z6: EAP-MSCHAPv2 — gateway messages → ``MsChapV2Peer``, client messages → ``MsChapV2Server``,
and an honest conversation with one packet spoiled (``_eap``).

"Completed" for the peer: it has sent the MS-CHAPv2 Success Response (OpCode 3), which it does
only after verifying the gateway's ``S=`` authenticator response.
"""

from __future__ import annotations

from pyipsec.crypto.rand import SeededRandom
from pyipsec.iana.ikev2 import EapType
from pyipsec.ike.eap.base import EapPeer
from pyipsec.ike.eap.mschapv2 import MsChapV2OpCode, MsChapV2Peer, MsChapV2Server
from pyipsec.ike.eap.mschapv2_crypto import nt_password_hash
from pyipsec.wire.payloads.eap import EapMessage
from tests.fuzz.targets._eap import Method, check_method

USER, PASSWORD = "alice", "correct horse battery"


class _Users:
    def __init__(self) -> None:
        self.hashes = {USER: nt_password_hash(PASSWORD)}

    def nt_hash(self, username: str) -> bytes | None:
        return self.hashes.get(username)


def _completed(peer: EapPeer, sent: list[bytes]) -> bool:
    for packet in sent:
        msg = EapMessage.decode(packet)
        if msg.eap_type == EapType.MSCHAPV2 and msg.type_data[:1] == bytes([MsChapV2OpCode.SUCCESS]):
            return True
    return False


METHOD = Method(
    peer=lambda: MsChapV2Peer(USER, PASSWORD, rng=SeededRandom(1)),
    server=lambda: MsChapV2Server(_Users(), rng=SeededRandom(2)),
    completed=_completed,
)


def check(data: bytes) -> None:
    check_method(METHOD, data)
