"""Authentication payload (RFC 7296 §3.8, RFC 7427 §3)."""

from __future__ import annotations

import pytest

from pyipsec.errors import DecodeError
from pyipsec.iana.ikev2 import AuthMethod, PayloadType
from pyipsec.wire.buffer import Reader
from pyipsec.wire.payloads.auth import Authentication

MAC = bytes(range(32))
# Auth Method 2 (Shared Key MIC), RESERVED (3), data.
PSK_BODY = bytes.fromhex("02 000000") + MAC

# RFC 7427 Appendix A.3.1: AlgorithmIdentifier of ecdsa-with-SHA256 (1.2.840.10045.4.3.2).
ECDSA_SHA256_ALG = bytes.fromhex("300a06082a8648ce3d040302")


def decode(body: bytes) -> Authentication:
    return Authentication.decode_body(PayloadType.AUTH, Reader(body))


def test_decode_psk() -> None:
    a = decode(PSK_BODY)
    assert a == Authentication(AuthMethod.SHARED_KEY_MESSAGE_INTEGRITY_CODE, MAC)
    assert a.method is AuthMethod.SHARED_KEY_MESSAGE_INTEGRITY_CODE
    assert a.payload_type is PayloadType.AUTH


def test_encode_psk() -> None:
    assert Authentication(AuthMethod.SHARED_KEY_MESSAGE_INTEGRITY_CODE, MAC).encode_body() == PSK_BODY


def test_reserved_is_ignored() -> None:
    assert decode(bytes.fromhex("02 ffffff") + MAC).encode_body() == PSK_BODY


def test_unknown_method_kept() -> None:
    a = decode(bytes.fromhex("c8 000000 01"))
    assert int(a.method) == 200 and a.data == b"\x01"


@pytest.mark.parametrize("n", range(4))
def test_truncated(n: int) -> None:
    with pytest.raises(DecodeError):
        decode(PSK_BODY[:n])


def test_digital_signature_build_and_split() -> None:
    sig = b"\x30\x06\x02\x01\x01\x02\x01\x02"
    a = Authentication.digital_signature(ECDSA_SHA256_ALG, sig)
    assert a.method is AuthMethod.DIGITAL_SIGNATURE
    assert a.encode_body() == bytes.fromhex("0e 000000 0c") + ECDSA_SHA256_ALG + sig
    assert decode(a.encode_body()).split_signature() == (ECDSA_SHA256_ALG, sig)


def test_split_signature_errors() -> None:
    with pytest.raises(DecodeError):
        Authentication(AuthMethod.DIGITAL_SIGNATURE, b"\x0c\x30\x0a").split_signature()
    with pytest.raises(DecodeError):
        Authentication(AuthMethod.DIGITAL_SIGNATURE, b"").split_signature()
    with pytest.raises(DecodeError):
        Authentication(AuthMethod.DIGITAL_SIGNATURE, b"\x00sig").split_signature()
    with pytest.raises(DecodeError):
        Authentication(AuthMethod.SHARED_KEY_MESSAGE_INTEGRITY_CODE, MAC).split_signature()


def test_digital_signature_rejects_bad_algorithm_identifier() -> None:
    with pytest.raises(ValueError):
        Authentication.digital_signature(b"", b"sig")
    with pytest.raises(ValueError):
        Authentication.digital_signature(bytes(256), b"sig")


def test_method_out_of_range() -> None:
    with pytest.raises(ValueError):
        Authentication(256, b"")  # type: ignore[arg-type]
