"""Vendor ID payload (RFC 7296 §3.12)."""

from __future__ import annotations

import hashlib

from pyipsec.iana.ikev2 import PayloadType
from pyipsec.wire.buffer import Reader
from pyipsec.wire.payloads.vendor import VendorId


def test_roundtrip() -> None:
    vid = hashlib.md5(b"strongSwan", usedforsecurity=False).digest()
    v = VendorId.decode_body(PayloadType.V, Reader(vid))
    assert v == VendorId(vid)
    assert v.encode_body() == vid
    assert v.payload_type is PayloadType.V


def test_empty_vendor_id() -> None:
    assert VendorId.decode_body(PayloadType.V, Reader(b"")) == VendorId(b"")
