from __future__ import annotations

from typing import Any

import pytest

from pyipsec.errors import DecodeError
from pyipsec.iana.ikev2 import PayloadType
from pyipsec.wire.buffer import Reader
from pyipsec.wire.payloads.base import decoder_for
from pyipsec.wire.payloads.sk import EncryptedFragment, EncryptedPayload, decode_sk, decode_skf
from tests.unit.wire.payload_vectors_b import body, capture_messages, cases, outer_payloads


@pytest.mark.parametrize("case", cases("SK"), ids=lambda c: c["id"])
def test_sk_vector(case: dict[str, Any]) -> None:
    f = case["fields"]
    expected = EncryptedPayload(PayloadType(f["inner_type"]), bytes.fromhex(f["data"]))
    assert decode_sk(PayloadType(case["next_payload"]), Reader(body(case))) == expected
    assert expected.encode_body() == body(case)
    assert expected.payload_type == PayloadType.SK


@pytest.mark.parametrize("case", cases("SKF"), ids=lambda c: c["id"])
def test_skf_vector(case: dict[str, Any]) -> None:
    f = case["fields"]
    expected = EncryptedFragment(
        f["fragment_number"], f["total_fragments"], PayloadType(f["inner_type"]), bytes.fromhex(f["data"])
    )
    assert decode_skf(PayloadType(case["next_payload"]), Reader(body(case))) == expected
    assert expected.encode_body() == body(case)
    assert expected.payload_type == PayloadType.SKF


def test_not_registered_with_the_generic_registry() -> None:
    # The chain codec calls decode_sk/decode_skf itself, passing the Next Payload field.
    assert decoder_for(PayloadType.SK) is None
    assert decoder_for(PayloadType.SKF) is None


def test_sk_consumes_everything_and_allows_empty_inner() -> None:
    r = Reader(b"\x01\x02\x03")
    assert decode_sk(PayloadType.NO_NEXT_PAYLOAD, r) == EncryptedPayload(
        PayloadType.NO_NEXT_PAYLOAD, b"\x01\x02\x03"
    )
    assert r.at_end()
    assert decode_sk(PayloadType.N, Reader(b"")).data == b""


@pytest.mark.parametrize(
    ("inner", "data", "offset"),
    [
        pytest.param(0, "", 500, id="empty"),
        pytest.param(0, "000100", 502, id="total truncated"),
        pytest.param(35, "00000001", 500, id="fragment 0"),
        pytest.param(35, "00010000", 500, id="total 0"),
        pytest.param(0, "00040003", 500, id="number above total"),
        pytest.param(35, "00020003", 500, id="non-first with next payload"),
    ],
)
def test_skf_errors(inner: int, data: str, offset: int) -> None:
    with pytest.raises(DecodeError) as exc:
        decode_skf(PayloadType(inner), Reader(bytes.fromhex(data), base=500))
    assert exc.value.offset == offset


def test_skf_limits() -> None:
    f = decode_skf(PayloadType.NO_NEXT_PAYLOAD, Reader(bytes.fromhex("ffffffff")))
    assert (f.fragment_number, f.total_fragments, f.data) == (0xFFFF, 0xFFFF, b"")
    one = decode_skf(PayloadType.NO_NEXT_PAYLOAD, Reader(bytes.fromhex("00010001")))
    assert one.inner_type == PayloadType.NO_NEXT_PAYLOAD


@pytest.mark.parametrize(
    ("number", "total", "inner"),
    [(0, 1, 0), (2, 1, 0), (1, 0, 0), (2, 2, 35), (1, 0x10000, 0), (1, 1, 256)],
)
def test_fragment_constructor_checks(number: int, total: int, inner: int) -> None:
    with pytest.raises(ValueError):
        EncryptedFragment(number, total, PayloadType(inner), b"")


def test_repr_hides_bulk_data() -> None:
    assert "octets" in repr(EncryptedPayload(PayloadType.IDi, bytes(100)))
    assert "1/2" in repr(EncryptedFragment(1, 2, PayloadType.IDi, bytes(100)))


def test_strongswan_sk_payloads() -> None:
    found = 0
    for _stem, msg in capture_messages():
        if "sk" not in msg:
            continue
        (raw,) = outer_payloads(msg)
        assert raw.ptype == PayloadType.SK
        sk = decode_sk(PayloadType(raw.next_type), Reader(raw.body))
        assert sk.encode_body() == raw.body
        inner = msg["sk"]["inner_payloads"]
        assert sk.inner_type == (inner[0]["type"] if inner else PayloadType.NO_NEXT_PAYLOAD)
        found += 1
    assert found == 20  # 5 captures x (2 IKE_AUTH + 2 INFORMATIONAL)
