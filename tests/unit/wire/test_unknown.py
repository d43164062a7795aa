"""Unknown payloads (RFC 7296 §2.5)."""

from __future__ import annotations

import pytest

from pyipsec.iana.ikev2 import PayloadType
from pyipsec.wire.payloads.unknown import UnknownPayload


def test_fields() -> None:
    p = UnknownPayload(PayloadType(200), False, body=b"abc")
    assert p.payload_type == 200 and not p.payload_type.is_assigned
    assert p.encode_body() == b"abc"


def test_int_type_is_normalised() -> None:
    assert UnknownPayload(49, True, body=b"").payload_type is PayloadType.GSPM  # type: ignore[arg-type]


@pytest.mark.parametrize("ptype", [0, 256, -1])
def test_invalid_type(ptype: int) -> None:
    with pytest.raises(ValueError):
        UnknownPayload(ptype, False, body=b"")  # type: ignore[arg-type]
