"""Certificate handling raises only pyipsec errors, whatever bytes a peer sends.

Random bytes and byte-level mutations of real certificates (the strongSwan capture's) go
through ``load_certificate``; whatever loads then goes through identity matching, the CERTREQ
hash and chain validation. Every failure must be a :class:`~pyipsec.errors.CertificateError`
(an AuthenticationFailed), never a raw ``ValueError``/``IndexError`` from ``cryptography``
or from our own DER reading.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given
from hypothesis import strategies as st

from pyipsec.crypto.x509 import (
    TrustStore,
    ca_key_hash,
    identity_for_certificate,
    identity_matches_certificate,
    load_certificate,
)
from pyipsec.errors import CertificateError
from pyipsec.iana.ikev2 import IdType

PKI = Path(__file__).resolve().parents[1] / "captures" / "pki"
SEEDS = [load_certificate((PKI / f"{n}-ecdsa-cert.pem").read_bytes()) for n in ("ca", "left", "right")]
SEED_DER = [c.public_bytes(Encoding.DER) for c in SEEDS]
STORE = TrustStore([SEEDS[0]])
WHEN = datetime(2028, 3, 1, tzinfo=UTC)  # inside the capture certificates' validity
ID_TYPES = [
    IdType.ID_FQDN,
    IdType.ID_IPV4_ADDR,
    IdType.ID_RFC822_ADDR,
    IdType.ID_DER_ASN1_DN,
    IdType.ID_KEY_ID,
]


def _exercise(data: bytes, id_type: IdType, id_data: bytes) -> None:
    try:
        cert = load_certificate(data)
    except CertificateError:
        return
    with contextlib.suppress(CertificateError):
        identity_matches_certificate(id_type, id_data, cert)
    with contextlib.suppress(CertificateError):
        identity_for_certificate(cert)
    with contextlib.suppress(CertificateError):
        assert len(ca_key_hash(cert)) == 20
    with contextlib.suppress(CertificateError):
        STORE.verify_chain(cert, [], WHEN)


@given(st.binary(max_size=600), st.sampled_from(ID_TYPES), st.binary(max_size=40))
def test_random_bytes(data: bytes, id_type: IdType, id_data: bytes) -> None:
    _exercise(data, id_type, id_data)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEED_DER)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "cut", "insert"]))
        pos = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            data[pos] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[pos : pos + draw(st.integers(1, 8))]
        else:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        if not data:
            break
    return bytes(data)


@given(
    mutated(), st.sampled_from(ID_TYPES), st.sampled_from([b"left.ih.test", b"\x0a\xe7\x01\x01", b"\x30\x00"])
)
def test_mutated_certificates(data: bytes, id_type: IdType, id_data: bytes) -> None:
    _exercise(data, id_type, id_data)
