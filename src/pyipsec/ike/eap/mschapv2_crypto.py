"""MS-CHAPv2 computations (RFC 2759 §8) and its MPPE/EAP key derivation (RFC 3079 §3).

Theory of operation: both sides know the NT hash ``H = MD4(UTF-16LE(password))`` (the gateway
stores only that). The authenticator sends a 16-octet challenge, the peer a 16-octet challenge
of its own; ``ChallengeHash = SHA1(PeerChallenge | AuthenticatorChallenge | UserName)[:8]``
(user name without any ``DOMAIN\\`` prefix). The peer proves knowledge of ``H`` with the
24-octet NT-Response: ``ChallengeHash`` DES-encrypted under the three 7-octet thirds of ``H``
padded to 21 octets. The authenticator proves it back with the Authenticator Response
``S=<40 hex>``, a SHA-1 over ``MD4(H)``, the NT-Response, ``ChallengeHash`` and two magic
strings. Keys come from ``MasterKey = SHA1(MD4(H) | NT-Response | Magic1)[:16]`` and its two
asymmetric 16-octet start keys (RFC 3079 §3.4).

The MSK exported to IKEv2 is, as strongSwan (``eap_mschapv2.c``, ``GenerateMSK``), hostapd,
Windows and Apple compute it: the server's receive key (Magic2, the client's send key), then the
server's send key (Magic3, the client's receive key), then 32 zero octets, 64 in all. Peer and
gateway derive the same 64 octets.

DES is ``cryptography``'s decrepit TripleDES with the single DES key repeated three times
(EDE with K1 = K2 = K3 is DES), which OpenSSL 3 and 4 still provide without the legacy provider.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from pyipsec.crypto.md4 import md4

__all__ = [
    "AUTHENTICATOR_RESPONSE_LEN",
    "CHALLENGE_LEN",
    "NT_HASH_LEN",
    "NT_RESPONSE_LEN",
    "authenticator_response_text",
    "challenge_hash",
    "challenge_response",
    "des_encrypt",
    "expand_des_key",
    "generate_authenticator_response",
    "generate_nt_response",
    "get_asymmetric_start_key",
    "get_master_key",
    "hash_nt_password_hash",
    "mschapv2_msk",
    "nt_password_hash",
    "strip_domain",
]

CHALLENGE_LEN = 16
NT_HASH_LEN = 16
NT_RESPONSE_LEN = 24
AUTHENTICATOR_RESPONSE_LEN = 20
MAX_PASSWORD_CHARS = 256  # RFC 2759 §8.1: "0-to-256-unicode-char Password"

_MAGIC1_AUTH = b"Magic server to client signing constant"  # RFC 2759 §8.7
_MAGIC2_AUTH = b"Pad to make it do more than one iteration"
_MAGIC1_KEY = b"This is the MPPE Master Key"  # RFC 3079 §3.4
_MAGIC2_KEY = b"On the client side, this is the send key; on the server side, it is the receive key."
_MAGIC3_KEY = b"On the client side, this is the receive key; on the server side, it is the send key."
_SHS_PAD1 = b"\x00" * 40
_SHS_PAD2 = b"\xf2" * 40


def _sha1(*parts: bytes) -> bytes:
    # SHA-1 is what RFC 2759 and RFC 3079 specify; it is not our choice to make.
    return hashlib.sha1(b"".join(parts)).digest()  # noqa: S324


def nt_password_hash(password: str) -> bytes:
    """NtPasswordHash (RFC 2759 §8.3): MD4 of the password in UTF-16LE (16 octets).

    Raises ValueError for a password longer than 256 characters or one that has no UTF-16 form
    (a lone surrogate).
    """
    if len(password) > MAX_PASSWORD_CHARS:
        raise ValueError(f"an MS-CHAPv2 password has at most {MAX_PASSWORD_CHARS} characters")
    try:
        encoded = password.encode("utf-16-le")
    except UnicodeEncodeError:
        raise ValueError("the password is not valid Unicode text") from None
    return md4(encoded)


def hash_nt_password_hash(password_hash: bytes) -> bytes:
    """HashNtPasswordHash (RFC 2759 §8.4): MD4 of the NT hash."""
    return md4(password_hash)


def strip_domain(username: bytes) -> bytes:
    """The user name without a ``DOMAIN\\`` prefix, as ChallengeHash wants it (RFC 2759 §8.2)."""
    return username.rpartition(b"\\")[2]


def challenge_hash(peer_challenge: bytes, authenticator_challenge: bytes, username: bytes) -> bytes:
    """ChallengeHash (RFC 2759 §8.2): the first 8 octets of SHA-1(peer | authenticator | name).

    ``username`` is used as given; callers strip the domain with :func:`strip_domain`.
    """
    _check_len("peer challenge", peer_challenge, CHALLENGE_LEN)
    _check_len("authenticator challenge", authenticator_challenge, CHALLENGE_LEN)
    return _sha1(peer_challenge, authenticator_challenge, username)[:8]


def expand_des_key(key7: bytes) -> bytes:
    """A 7-octet (56-bit) key spread over 8 octets, each with an odd parity bit as its lowest bit
    (the key layout DES expects; RFC 2759 §8.6 DesEncrypt)."""
    _check_len("DES key", key7, 7)
    bits = int.from_bytes(key7, "big")
    out = bytearray()
    for i in range(8):
        seven = (bits >> (49 - 7 * i)) & 0x7F
        octet = seven << 1
        out.append(octet | (bin(octet).count("1") + 1) % 2)
    return bytes(out)


def des_encrypt(clear: bytes, key7: bytes) -> bytes:
    """DesEncrypt (RFC 2759 §8.6): one DES-ECB block of ``clear`` under the 7-octet ``key7``."""
    _check_len("DES block", clear, 8)
    key = expand_des_key(key7)
    # EDE with three equal keys is single DES. ECB on exactly one block is what the RFC asks.
    encryptor = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()  # noqa: S305
    return encryptor.update(clear) + encryptor.finalize()


def challenge_response(challenge: bytes, password_hash: bytes) -> bytes:
    """ChallengeResponse (RFC 2759 §8.5): the 8-octet challenge DES-encrypted three times
    under the NT hash zero-padded to 21 octets (24 octets)."""
    _check_len("challenge", challenge, 8)
    _check_len("NT hash", password_hash, NT_HASH_LEN)
    z = password_hash + b"\x00" * 5
    return des_encrypt(challenge, z[0:7]) + des_encrypt(challenge, z[7:14]) + des_encrypt(challenge, z[14:21])


def generate_nt_response(
    authenticator_challenge: bytes, peer_challenge: bytes, username: bytes, password_hash: bytes
) -> bytes:
    """GenerateNTResponse (RFC 2759 §8.1), from the NT hash rather than the password."""
    return challenge_response(
        challenge_hash(peer_challenge, authenticator_challenge, username), password_hash
    )


def generate_authenticator_response(
    password_hash: bytes,
    nt_response: bytes,
    peer_challenge: bytes,
    authenticator_challenge: bytes,
    username: bytes,
) -> bytes:
    """GenerateAuthenticatorResponse (RFC 2759 §8.7): the 20 raw octets behind ``S=``."""
    _check_len("NT-Response", nt_response, NT_RESPONSE_LEN)
    digest = _sha1(hash_nt_password_hash(password_hash), nt_response, _MAGIC1_AUTH)
    challenge = challenge_hash(peer_challenge, authenticator_challenge, username)
    return _sha1(digest, challenge, _MAGIC2_AUTH)


def authenticator_response_text(response: bytes) -> str:
    """The ``S=`` form of an authenticator response: 40 upper-case hex digits (RFC 2759 §5)."""
    _check_len("authenticator response", response, AUTHENTICATOR_RESPONSE_LEN)
    return "S=" + response.hex().upper()


def get_master_key(password_hash_hash: bytes, nt_response: bytes) -> bytes:
    """GetMasterKey (RFC 3079 §3.4): 16 octets."""
    _check_len("NT-Response", nt_response, NT_RESPONSE_LEN)
    return _sha1(password_hash_hash, nt_response, _MAGIC1_KEY)[:16]


def get_asymmetric_start_key(master_key: bytes, length: int, *, is_send: bool, is_server: bool) -> bytes:
    """GetAsymmetricStartKey (RFC 3079 §3.4): the send or receive start key of one side.

    The server's send key is the client's receive key (Magic3) and vice versa (Magic2).
    """
    if length not in (8, 16):
        raise ValueError("MPPE session keys are 8 or 16 octets")
    magic = _MAGIC3_KEY if is_send == is_server else _MAGIC2_KEY
    return _sha1(master_key, _SHS_PAD1, magic, _SHS_PAD2)[:length]


def mschapv2_msk(password_hash: bytes, nt_response: bytes) -> bytes:
    """The 64-octet EAP-MSCHAPv2 MSK: server receive key | server send key | 32 zero octets.

    This is strongSwan's ``GenerateMSK`` layout (MasterReceiveKey | MasterSendKey | padding), the
    same on both sides, so AUTH = prf(MSK, ...) agrees with strongSwan, Windows, Apple and
    Android peers (RFC 7296 §2.16).
    """
    master = get_master_key(hash_nt_password_hash(password_hash), nt_response)
    receive = get_asymmetric_start_key(master, 16, is_send=False, is_server=True)
    send = get_asymmetric_start_key(master, 16, is_send=True, is_server=True)
    return receive + send + b"\x00" * 32


def _check_len(what: str, value: bytes, length: int) -> None:
    if len(value) != length:
        raise ValueError(f"{what} must be {length} octets, got {len(value)}")
