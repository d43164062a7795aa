"""The Child SA model: what it refuses, and that no repr or log line shows its keys."""

from __future__ import annotations

import logging
from dataclasses import replace
from ipaddress import ip_address

import pytest

from pyipsec.childsa import ChildSaSpec, EspMode, Lifetimes
from pyipsec.iana.transforms import EncrId, IntegId
from pyipsec.ike.events import ChildSaInstalled
from pyipsec.net.addr import Endpoint
from pyipsec.wire.payloads.ts import TrafficSelector

KEYS = {
    "encr_key_in": bytes.fromhex("c0ffee01") * 8,
    "integ_key_in": bytes.fromhex("c0ffee02") * 8,
    "encr_key_out": bytes.fromhex("c0ffee03") * 8,
    "integ_key_out": bytes.fromhex("c0ffee04") * 8,
}


def _spec() -> ChildSaSpec:
    return ChildSaSpec(
        spi_in=b"\xc1\x00\x00\x01",
        spi_out=b"\xc2\x00\x00\x02",
        encr=EncrId.ENCR_AES_CBC,
        encr_key_bits=256,
        integ=IntegId.AUTH_HMAC_SHA2_256_128,
        esn=False,
        mode=EspMode.TUNNEL,
        local_ts=(TrafficSelector.from_network("10.1.0.0/16"),),
        remote_ts=(TrafficSelector.from_network("10.2.0.0/16", protocol=6, ports=(443, 443)),),
        local=Endpoint(ip_address("192.0.2.1"), 4500),
        remote=Endpoint(ip_address("192.0.2.2"), 4500),
        encap=True,
        replay_window=1024,
        lifetimes=Lifetimes(soft_bytes=900, hard_bytes=1000),
        **KEYS,
    )


def test_repr_and_logs_carry_no_key_bytes(caplog: pytest.LogCaptureFixture) -> None:
    spec = _spec()
    event = ChildSaInstalled(1, "office", "net", 7, "aes256-sha256", spec)
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("installed %s / %r", spec, event)
    text = repr(spec) + str(spec) + repr(event) + caplog.text
    assert "c0ffee" not in text.lower()
    for name, key in KEYS.items():
        assert name not in text and repr(key) not in text and key.hex() not in text
    # what the repr does show: enough to recognise the SA
    assert repr(spec.spi_in) in repr(spec) and repr(spec.remote_ts[0]) in repr(spec)
    assert "EspMode.TUNNEL" in repr(spec) and "soft_bytes=900" in repr(spec)


def test_defaults_and_equality() -> None:
    spec = _spec()
    assert spec.outbound_active
    assert replace(spec, outbound_active=False) != spec
    assert replace(spec, encr_key_in=b"other") != spec  # keys are compared, just not shown
    assert replace(spec, lifetimes=None).lifetimes is None
    assert Lifetimes() == Lifetimes(soft_bytes=None, hard_seconds=None)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"spi_in": b"\x01\x02"}, "4 bytes"),
        ({"spi_out": b"\x01\x02\x03\x04\x05"}, "4 bytes"),
        ({"mode": "tunnel"}, "EspMode"),
        ({"remote": Endpoint(ip_address("2001:db8::2"), 4500)}, "families"),
        ({"local_ts": ()}, "selectors"),
        ({"remote_ts": ()}, "selectors"),
    ],
)
def test_validation(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        replace(_spec(), **changes)  # type: ignore[arg-type]


def test_mode_values() -> None:
    assert [m.value for m in EspMode] == ["tunnel", "transport"]
    assert EspMode("transport") is EspMode.TRANSPORT
