"""MS-CHAPv2 computations: RFC 2759 §9.2 and RFC 3079 §3.5.3 known answers, the MSK layout."""

from __future__ import annotations

import pytest

from pyipsec.ike.eap.mschapv2_crypto import (
    authenticator_response_text,
    challenge_hash,
    challenge_response,
    des_encrypt,
    expand_des_key,
    generate_authenticator_response,
    generate_nt_response,
    get_asymmetric_start_key,
    get_master_key,
    hash_nt_password_hash,
    mschapv2_msk,
    nt_password_hash,
    strip_domain,
)
from tests.unit.eap._support import VECTORS, h

V = VECTORS["rfc2759"]
K = VECTORS["rfc3079"]
USER = V["username"].encode()


def test_password_encoding_rfc2759() -> None:
    assert V["password"].encode("utf-16-le") == h(V["password_utf16le"])


def test_nt_password_hash_rfc2759() -> None:
    assert nt_password_hash(V["password"]) == h(V["password_hash"])


def test_hash_nt_password_hash_rfc2759() -> None:
    assert hash_nt_password_hash(h(V["password_hash"])) == h(V["password_hash_hash"])


def test_challenge_hash_rfc2759() -> None:
    assert challenge_hash(h(V["peer_challenge"]), h(V["authenticator_challenge"]), USER) == h(V["challenge"])


def test_challenge_response_rfc2759() -> None:
    assert challenge_response(h(V["challenge"]), h(V["password_hash"])) == h(V["nt_response"])


def test_generate_nt_response_rfc2759() -> None:
    nt = generate_nt_response(
        h(V["authenticator_challenge"]), h(V["peer_challenge"]), USER, h(V["password_hash"])
    )
    assert nt == h(V["nt_response"])


def test_generate_authenticator_response_rfc2759() -> None:
    raw = generate_authenticator_response(
        h(V["password_hash"]),
        h(V["nt_response"]),
        h(V["peer_challenge"]),
        h(V["authenticator_challenge"]),
        USER,
    )
    assert authenticator_response_text(raw) == V["authenticator_response"]


def test_master_key_rfc3079() -> None:
    assert get_master_key(h(V["password_hash_hash"]), h(V["nt_response"])) == h(K["master_key"])


def test_send_start_key_rfc3079_is_the_server_send_key() -> None:
    master = h(K["master_key"])
    server_send = get_asymmetric_start_key(master, 16, is_send=True, is_server=True)
    assert server_send == h(K["send_start_key_128"])
    # ... which is the client's receive key; the 40/56-bit keys are its first 8 octets.
    assert get_asymmetric_start_key(master, 16, is_send=False, is_server=False) == server_send
    assert get_asymmetric_start_key(master, 8, is_send=True, is_server=True) == server_send[:8]
    # The other direction uses Magic2 and differs.
    client_send = get_asymmetric_start_key(master, 16, is_send=True, is_server=False)
    assert client_send == get_asymmetric_start_key(master, 16, is_send=False, is_server=True)
    assert client_send != server_send


def test_msk_layout_matches_strongswan() -> None:
    msk = mschapv2_msk(h(V["password_hash"]), h(V["nt_response"]))
    assert msk == h(VECTORS["msk"]["msk"])
    master = h(K["master_key"])
    assert msk[:16] == get_asymmetric_start_key(master, 16, is_send=False, is_server=True)
    assert msk[16:32] == h(K["send_start_key_128"])
    assert msk[32:] == bytes(32)


def test_domain_is_not_part_of_the_challenge_hash() -> None:
    assert strip_domain(b"ACME\\User") == b"User"
    assert strip_domain(b"User") == b"User"
    assert strip_domain(b"a\\b\\User") == b"User"


def test_expand_des_key_sets_odd_parity() -> None:
    # Seven data bits per octet, parity in the lowest bit, odd overall: 1111111|0 and 0000000|1.
    assert expand_des_key(bytes.fromhex("ffffffffffffff")) == bytes([0xFE] * 8)
    for octet in expand_des_key(bytes(range(7))):
        assert bin(octet).count("1") % 2 == 1
    assert expand_des_key(bytes(7)) == bytes([0x01] * 8)


def test_des_encrypt_classic_vector() -> None:
    # The classic DES example (key 0123456789ABCDEF, "Now is t" -> 3FA40E8A984D4815); the
    # 7-octet form is the key with each octet's parity bit dropped.
    key8 = bytes.fromhex("0123456789abcdef")
    bits = 0
    for octet in key8:
        bits = (bits << 7) | (octet >> 1)
    key7 = bits.to_bytes(7, "big")
    assert des_encrypt(b"Now is t", key7) == bytes.fromhex("3fa40e8a984d4815")


@pytest.mark.parametrize("password", ["", "pässwörd", "密码", "emoji 🔑"])
def test_nt_password_hash_is_md4_of_utf16le(password: str) -> None:
    from pyipsec.crypto.md4 import md4_pure  # noqa: PLC0415

    assert nt_password_hash(password) == md4_pure(password.encode("utf-16-le"))


def test_nt_password_hash_rejects_bad_passwords() -> None:
    with pytest.raises(ValueError, match="256"):
        nt_password_hash("x" * 257)
    with pytest.raises(ValueError, match="Unicode"):
        nt_password_hash("bad \ud800 surrogate")
    assert len(nt_password_hash("x" * 256)) == 16


def test_length_checks() -> None:
    with pytest.raises(ValueError, match="peer challenge"):
        challenge_hash(bytes(15), bytes(16), b"u")
    with pytest.raises(ValueError, match="NT hash"):
        challenge_response(bytes(8), bytes(15))
    with pytest.raises(ValueError, match="8 or 16"):
        get_asymmetric_start_key(bytes(16), 32, is_send=True, is_server=True)
