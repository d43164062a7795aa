"""AUTH signatures: methods 1, 9-11 and 14 (RFC 7296 §3.8, RFC 4754, RFC 7427, RFC 8420)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import given
from hypothesis import strategies as st

from pyipsec.crypto import sig
from pyipsec.crypto.sig import (
    SIGNATURE_HASHES,
    SigningKey,
    parse_algorithm_identifier,
    preferred_hash,
    sign_auth,
    verify_auth,
)
from pyipsec.errors import AuthenticationFailed, UnsupportedAlgorithm
from pyipsec.iana.ikev2 import AuthMethod, HashAlgorithm

VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "vectors" / "rfc7427_algorithm_identifiers.json").read_text()
)
OCTETS = b"RealMessage1 | NonceR | prf(SK_pi, IDi')" * 3

SHA2 = (HashAlgorithm.SHA2_256, HashAlgorithm.SHA2_384, HashAlgorithm.SHA2_512)


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_keys() -> dict[str, ec.EllipticCurvePrivateKey]:
    return {c.name: ec.generate_private_key(c) for c in (ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1())}


def _split(auth_data: bytes) -> tuple[bytes, bytes]:
    return auth_data[1 : 1 + auth_data[0]], auth_data[1 + auth_data[0] :]


def _flip(data: bytes, index: int = -1) -> bytes:
    b = bytearray(data)
    b[index] ^= 0x01
    return bytes(b)


# --- RFC 7427 Appendix A AlgorithmIdentifiers ----------------------------------------------


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["ref"] + " " + c["name"])
def test_algorithm_identifier_vectors_parse(case: dict[str, object]) -> None:
    alg = parse_algorithm_identifier(bytes.fromhex(str(case["der"])))
    assert alg.scheme == case["scheme"]
    assert alg.hash_alg == HashAlgorithm[str(case["hash"])]
    if "salt_len" in case:
        assert alg.salt_len == case["salt_len"]


def test_sent_algorithm_identifiers_are_the_rfc_bytes() -> None:
    sent = {bytes.fromhex(c["der"]) for c in VECTORS["cases"] if c["sent"]}
    constants = {getattr(sig, name) for name in sig.__all__ if name.startswith("ALGID_")}
    assert constants == sent


@pytest.mark.parametrize(
    "der",
    [
        "",
        "3000",  # no OID
        "300b06092a864886f70d0101",  # truncated
        "300d06092a864886f70d0101050500",  # sha1WithRSAEncryption: not offered in method 14
        "300c06082a8648ce3d0403020500",  # ECDSA with parameters
        "300d06092a864886f70d01010b050000",  # trailing byte
        # PSS with MGF1-SHA-1 but hash SHA-256
        "303e06092a864886f70d01010a3031a00f300d06096086480165030402010500"
        "a118301606092a864886f70d010108300906052b0e03021a0500",
        # PSS with trailerField 2
        "304606092a864886f70d01010a3039a00f300d06096086480165030402010500a11c301a06092a864886f70d010108"
        "300d06096086480165030402010500a203020120a303020102",
    ],
)
def test_bad_algorithm_identifiers_are_rejected(der: str) -> None:
    with pytest.raises(ValueError):
        parse_algorithm_identifier(bytes.fromhex(der))


# --- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("hash_alg", SHA2)
@pytest.mark.parametrize("pss", [False, True], ids=["pkcs1", "pss"])
def test_rsa_method14_round_trip(rsa_key: rsa.RSAPrivateKey, hash_alg: HashAlgorithm, pss: bool) -> None:
    data = sign_auth(rsa_key, AuthMethod.DIGITAL_SIGNATURE, OCTETS, hash_alg, rsa_pss=pss)
    algid, signature = _split(data)
    alg = parse_algorithm_identifier(algid)
    assert (alg.scheme, alg.hash_alg) == ("pss" if pss else "pkcs1", hash_alg)
    assert len(signature) == 256
    verify_auth(rsa_key.public_key(), AuthMethod.DIGITAL_SIGNATURE, data, OCTETS, SIGNATURE_HASHES)
    with pytest.raises(AuthenticationFailed, match="does not verify"):
        verify_auth(rsa_key.public_key(), AuthMethod.DIGITAL_SIGNATURE, data, _flip(OCTETS), SIGNATURE_HASHES)
    with pytest.raises(AuthenticationFailed, match="does not verify"):
        verify_auth(rsa_key.public_key(), AuthMethod.DIGITAL_SIGNATURE, _flip(data), OCTETS, SIGNATURE_HASHES)


def test_rsa_pss_uses_hash_length_salt(rsa_key: rsa.RSAPrivateKey) -> None:
    data = sign_auth(rsa_key, AuthMethod.DIGITAL_SIGNATURE, OCTETS, HashAlgorithm.SHA2_384, rsa_pss=True)
    _, signature = _split(data)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
    rsa_key.public_key().verify(signature, OCTETS, pss, hashes.SHA384())


def test_rsa_pss_with_rfc_printed_algorithm_identifier_verifies(rsa_key: rsa.RSAPrivateKey) -> None:
    # A peer sending A.4.3 exactly as printed in RFC 7427 (explicit trailerField) is accepted.
    printed = bytes.fromhex(next(c["der"] for c in VECTORS["cases"] if c["ref"] == "RFC 7427 A.4.3"))
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    signature = rsa_key.sign(OCTETS, pss, hashes.SHA256())
    data = bytes([len(printed)]) + printed + signature
    verify_auth(rsa_key.public_key(), AuthMethod.DIGITAL_SIGNATURE, data, OCTETS, SIGNATURE_HASHES)


@pytest.mark.parametrize("curve", ["secp256r1", "secp384r1", "secp521r1"])
@pytest.mark.parametrize("hash_alg", SHA2)
def test_ecdsa_method14_round_trip(
    ec_keys: dict[str, ec.EllipticCurvePrivateKey], curve: str, hash_alg: HashAlgorithm
) -> None:
    key = ec_keys[curve]
    data = sign_auth(key, AuthMethod.DIGITAL_SIGNATURE, OCTETS, hash_alg)
    algid, signature = _split(data)
    assert parse_algorithm_identifier(algid).hash_alg == hash_alg
    decode_dss_signature(signature)  # method 14 carries the DER Ecdsa-Sig-Value
    verify_auth(key.public_key(), AuthMethod.DIGITAL_SIGNATURE, data, OCTETS, SIGNATURE_HASHES)
    with pytest.raises(AuthenticationFailed, match="does not verify"):
        verify_auth(key.public_key(), AuthMethod.DIGITAL_SIGNATURE, data, _flip(OCTETS, 0), SIGNATURE_HASHES)


@pytest.mark.parametrize(
    ("method", "curve", "n"),
    [
        (AuthMethod.ECDSA_SHA_256_P256, "secp256r1", 32),
        (AuthMethod.ECDSA_SHA_384_P384, "secp384r1", 48),
        (AuthMethod.ECDSA_SHA_512_P521, "secp521r1", 66),
    ],
)
def test_rfc4754_round_trip_is_fixed_length_r_s(
    ec_keys: dict[str, ec.EllipticCurvePrivateKey], method: AuthMethod, curve: str, n: int
) -> None:
    key = ec_keys[curve]
    for _ in range(4):  # r or s with leading zero bytes must still be n bytes each
        data = sign_auth(key, method, OCTETS)
        assert len(data) == 2 * n
        verify_auth(key.public_key(), method, data, OCTETS)
    with pytest.raises(AuthenticationFailed, match="does not verify"):
        verify_auth(key.public_key(), method, _flip(data), OCTETS)
    with pytest.raises(AuthenticationFailed, match="octets"):
        verify_auth(key.public_key(), method, data[:-1], OCTETS)


def test_rfc4754_method_fixes_curve_and_hash(ec_keys: dict[str, ec.EllipticCurvePrivateKey]) -> None:
    p256, p384 = ec_keys["secp256r1"], ec_keys["secp384r1"]
    with pytest.raises(UnsupportedAlgorithm, match="secp256r1"):
        sign_auth(p384, AuthMethod.ECDSA_SHA_256_P256, OCTETS)
    with pytest.raises(UnsupportedAlgorithm, match="fixes the hash"):
        sign_auth(p256, AuthMethod.ECDSA_SHA_256_P256, OCTETS, HashAlgorithm.SHA2_384)
    data = sign_auth(p256, AuthMethod.ECDSA_SHA_256_P256, OCTETS)
    with pytest.raises(AuthenticationFailed, match="secp384r1"):
        verify_auth(p256.public_key(), AuthMethod.ECDSA_SHA_384_P384, data, OCTETS)


def test_rsa_method1_is_pkcs1_sha1(rsa_key: rsa.RSAPrivateKey) -> None:
    data = sign_auth(rsa_key, AuthMethod.RSA_DIGITAL_SIGNATURE, OCTETS)
    rsa_key.public_key().verify(data, OCTETS, padding.PKCS1v15(), hashes.SHA1())
    verify_auth(rsa_key.public_key(), AuthMethod.RSA_DIGITAL_SIGNATURE, data, OCTETS)
    with pytest.raises(AuthenticationFailed, match="does not verify"):
        verify_auth(rsa_key.public_key(), AuthMethod.RSA_DIGITAL_SIGNATURE, data, _flip(OCTETS))
    with pytest.raises(UnsupportedAlgorithm, match="SHA-1 only"):
        sign_auth(rsa_key, AuthMethod.RSA_DIGITAL_SIGNATURE, OCTETS, HashAlgorithm.SHA2_256)


@pytest.mark.parametrize(
    ("make", "algid"),
    [
        (ed25519.Ed25519PrivateKey.generate, sig.ALGID_ED25519),
        (ed448.Ed448PrivateKey.generate, sig.ALGID_ED448),
    ],
    ids=["ed25519", "ed448"],
)
def test_eddsa_method14_round_trip(make: object, algid: bytes) -> None:
    key: SigningKey = make()  # type: ignore[operator]
    data = sign_auth(key, AuthMethod.DIGITAL_SIGNATURE, OCTETS, HashAlgorithm.IDENTITY)
    assert _split(data)[0] == algid
    assert sign_auth(key, AuthMethod.DIGITAL_SIGNATURE, OCTETS) == data  # EdDSA is deterministic
    verify_auth(key.public_key(), AuthMethod.DIGITAL_SIGNATURE, data, OCTETS, SIGNATURE_HASHES)
    with pytest.raises(AuthenticationFailed, match="does not verify"):
        verify_auth(key.public_key(), AuthMethod.DIGITAL_SIGNATURE, data, _flip(OCTETS), SIGNATURE_HASHES)
    with pytest.raises(AuthenticationFailed, match="did not announce"):
        verify_auth(key.public_key(), AuthMethod.DIGITAL_SIGNATURE, data, OCTETS, SHA2)
    with pytest.raises(UnsupportedAlgorithm, match="identity hash"):
        sign_auth(key, AuthMethod.DIGITAL_SIGNATURE, OCTETS, HashAlgorithm.SHA2_256)


# --- mismatches ---------------------------------------------------------------------------------


def test_hash_not_announced_is_rejected(ec_keys: dict[str, ec.EllipticCurvePrivateKey]) -> None:
    key = ec_keys["secp256r1"]
    data = sign_auth(key, AuthMethod.DIGITAL_SIGNATURE, OCTETS, HashAlgorithm.SHA2_512)
    with pytest.raises(AuthenticationFailed, match="SHA2_512"):
        verify_auth(key.public_key(), AuthMethod.DIGITAL_SIGNATURE, data, OCTETS, (HashAlgorithm.SHA2_256,))


def test_algorithm_not_fitting_the_key_is_rejected(
    rsa_key: rsa.RSAPrivateKey, ec_keys: dict[str, ec.EllipticCurvePrivateKey]
) -> None:
    ecdsa = sign_auth(ec_keys["secp256r1"], AuthMethod.DIGITAL_SIGNATURE, OCTETS)
    with pytest.raises(AuthenticationFailed, match="does not fit"):
        verify_auth(rsa_key.public_key(), AuthMethod.DIGITAL_SIGNATURE, ecdsa, OCTETS)
    rsa_data = sign_auth(rsa_key, AuthMethod.DIGITAL_SIGNATURE, OCTETS)
    with pytest.raises(AuthenticationFailed, match="does not fit"):
        verify_auth(ec_keys["secp256r1"].public_key(), AuthMethod.DIGITAL_SIGNATURE, rsa_data, OCTETS)
    # the same signature bytes under a different method
    with pytest.raises(AuthenticationFailed):
        verify_auth(rsa_key.public_key(), AuthMethod.RSA_DIGITAL_SIGNATURE, rsa_data, OCTETS)
    with pytest.raises(AuthenticationFailed, match="not RSA"):
        verify_auth(ec_keys["secp256r1"].public_key(), AuthMethod.RSA_DIGITAL_SIGNATURE, rsa_data, OCTETS)


def test_swapped_pkcs1_and_pss_algorithm_identifiers_fail(rsa_key: rsa.RSAPrivateKey) -> None:
    data = sign_auth(rsa_key, AuthMethod.DIGITAL_SIGNATURE, OCTETS, HashAlgorithm.SHA2_256)
    _, signature = _split(data)
    relabelled = bytes([len(sig.ALGID_RSA_PSS_SHA256)]) + sig.ALGID_RSA_PSS_SHA256 + signature
    with pytest.raises(AuthenticationFailed, match="does not verify"):
        verify_auth(rsa_key.public_key(), AuthMethod.DIGITAL_SIGNATURE, relabelled, OCTETS)


@pytest.mark.parametrize("data", [b"", b"\x20" + b"\x30" * 5, b"\x02\x30\x00sig"])
def test_malformed_method14_data_is_authentication_failed(
    ec_keys: dict[str, ec.EllipticCurvePrivateKey], data: bytes
) -> None:
    with pytest.raises(AuthenticationFailed):
        verify_auth(ec_keys["secp256r1"].public_key(), AuthMethod.DIGITAL_SIGNATURE, data, OCTETS)


def test_non_signature_methods_are_refused(ec_keys: dict[str, ec.EllipticCurvePrivateKey]) -> None:
    key = ec_keys["secp256r1"]
    with pytest.raises(UnsupportedAlgorithm):
        sign_auth(key, AuthMethod.SHARED_KEY_MESSAGE_INTEGRITY_CODE, OCTETS)
    with pytest.raises(AuthenticationFailed, match="not a signature method"):
        verify_auth(key.public_key(), AuthMethod.SHARED_KEY_MESSAGE_INTEGRITY_CODE, b"x" * 32, OCTETS)


def test_preferred_hash(rsa_key: rsa.RSAPrivateKey, ec_keys: dict[str, ec.EllipticCurvePrivateKey]) -> None:
    assert preferred_hash(ec_keys["secp384r1"], SIGNATURE_HASHES) == HashAlgorithm.SHA2_384
    assert preferred_hash(ec_keys["secp521r1"], SIGNATURE_HASHES) == HashAlgorithm.SHA2_512
    assert preferred_hash(ec_keys["secp384r1"], (HashAlgorithm.SHA2_256,)) == HashAlgorithm.SHA2_256
    assert preferred_hash(rsa_key, SIGNATURE_HASHES) == HashAlgorithm.SHA2_256
    assert preferred_hash(ed25519.Ed25519PrivateKey.generate(), SHA2) is None
    assert preferred_hash(rsa_key, (HashAlgorithm.IDENTITY,)) is None
    # default hash of method 14 follows the curve
    data = sign_auth(ec_keys["secp521r1"], AuthMethod.DIGITAL_SIGNATURE, OCTETS)
    assert parse_algorithm_identifier(_split(data)[0]).hash_alg == HashAlgorithm.SHA2_512


@given(st.binary(max_size=80))
def test_arbitrary_algorithm_identifier_bytes_raise_only_value_error(data: bytes) -> None:
    try:
        alg = parse_algorithm_identifier(data)
    except ValueError:
        return
    assert alg.hash_alg in (*SIGNATURE_HASHES, HashAlgorithm.SHA1)


@given(st.binary(max_size=120))
def test_arbitrary_method14_data_raises_only_authentication_failed(data: bytes) -> None:
    key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(32)).public_key()
    with pytest.raises(AuthenticationFailed):
        verify_auth(key, AuthMethod.DIGITAL_SIGNATURE, data, OCTETS)
