"""Shared CAs for the PKI tests: ECDSA keys are fresh and fast; RSA keys come from the pool of
tests.support.pki so that only one test pays for generating an RSA 3072 key."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pyipsec.crypto.rand import SeededRandom
from pyipsec.pki.ca import Issued, create_ca
from pyipsec.pki.keys import KeySpec

NOW = datetime(2031, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def now() -> datetime:
    return NOW


@pytest.fixture
def ec_ca() -> Issued:
    return create_ca("Test CA", now=NOW, key_spec=KeySpec("ecdsa", 256), rng=SeededRandom(1))
