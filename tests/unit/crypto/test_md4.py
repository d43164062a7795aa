"""MD4 (RFC 1320): the §A.5 test suite on the pure-Python implementation and on md4()."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyipsec.crypto import md4 as md4_module
from pyipsec.crypto.md4 import MD4_DIGEST_SIZE, md4, md4_pure, openssl_has_md4
from tests.unit.crypto._support import h, load_vectors

_CASES = load_vectors("rfc1320_md4.json")["cases"]


@pytest.mark.parametrize("case", _CASES, ids=lambda c: c["section"])
def test_md4_pure_rfc1320(case: dict[str, Any]) -> None:
    assert md4_pure(case["message"].encode("ascii")) == h(case["digest"])


@pytest.mark.parametrize("case", _CASES, ids=lambda c: c["section"])
def test_md4_rfc1320(case: dict[str, Any]) -> None:
    assert md4(case["message"].encode("ascii")) == h(case["digest"])


def test_md4_falls_back_to_pure_python(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(md4_module, "_OPENSSL_MD4", False)
    assert md4(b"abc") == h("a448017aaf21d8525fc10ae87aa6729d")


@pytest.mark.parametrize("length", [55, 56, 63, 64, 65, 119, 120, 128])
def test_md4_padding_boundaries_are_distinct_and_sized(length: int) -> None:
    # One more or one fewer octet crosses the 56-mod-64 padding boundary.
    a, b = md4_pure(b"x" * length), md4_pure(b"x" * (length + 1))
    assert len(a) == len(b) == MD4_DIGEST_SIZE
    assert a != b


@pytest.mark.skipif(not openssl_has_md4(), reason="this OpenSSL has no MD4")
@given(st.binary(max_size=300))
def test_md4_pure_matches_openssl(data: bytes) -> None:
    assert md4_pure(data) == hashlib.new("md4", data).digest()


def test_md4_accepts_bytes_like() -> None:
    assert md4_pure(bytearray(b"abc")) == md4_pure(b"abc")
