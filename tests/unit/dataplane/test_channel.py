"""Channel messages: every message round-trips; keys stay out of reprs; garbage is refused."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from pyipsec.dataplane.messages import (
    Acquire,
    ActivateOutbound,
    ChildLifetimes,
    ChildPolicy,
    Counters,
    DataplaneError,
    Failed,
    IkeDatagram,
    InstallChild,
    Ready,
    RemoveChild,
    RequestCounters,
    SaCounters,
    SaSignal,
    SendIke,
    SendKeepalive,
    Shutdown,
    UpdateEndpoints,
    decode_control,
    decode_event,
    encode_control,
    encode_counters,
    encode_event,
)
from pyipsec.iana.transforms import EncrId, IntegId
from pyipsec.net.addr import Endpoint

V4 = Endpoint(ip_address("192.0.2.1"), 4500)
V6 = Endpoint(ip_address("2001:db8::2"), 4500)
SECRET = bytes(range(32))


def _policy(**kw: object) -> ChildPolicy:
    base: dict[str, object] = {
        "spi_in": b"\x01\x02\x03\x04",
        "spi_out": b"\x05\x06\x07\x08",
        "encr": EncrId.ENCR_AES_CBC,
        "encr_key_bits": 256,
        "integ": IntegId.AUTH_HMAC_SHA2_256_128,
        "encr_key_in": SECRET,
        "integ_key_in": SECRET[::-1],
        "encr_key_out": SECRET[1:] + b"x",
        "integ_key_out": b"y" * 32,
        "esn": True,
        "mode": "tunnel",
        "local_ts": ((ip_address("10.1.0.0"), ip_address("10.1.255.255"), 0, 0, 65535),),
        "remote_ts": ((ip_address("fd00::"), ip_address("fd00::ffff"), 6, 80, 443),),
        "local": V4,
        "remote": Endpoint(ip_address("192.0.2.2"), 4500),
        "encap": False,
        "replay_window": 4096,
        "lifetimes": ChildLifetimes(soft_bytes=10, hard_seconds=3600.0),
        "outbound_active": False,
    }
    base.update(kw)
    return ChildPolicy(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "msg",
    [
        InstallChild(_policy()),
        InstallChild(_policy(lifetimes=None, encr=EncrId.ENCR_AES_GCM_16, integ=IntegId.NONE)),
        RemoveChild(b"\x01\x02\x03\x04"),
        ActivateOutbound(b"\x01\x02\x03\x04"),
        ActivateOutbound(b"\x01\x02\x03\x04", active=False),
        UpdateEndpoints(b"\x01\x02\x03\x04", V4, Endpoint(ip_address("198.51.100.7"), 31337), True),
        UpdateEndpoints(b"\x01\x02\x03\x04", V6, V6, False),
        SendKeepalive(V4, Endpoint(ip_address("198.51.100.7"), 61000)),
        SendIke(V4, Endpoint(ip_address("198.51.100.7"), 61000), b"\x00" * 3 + b"ike"),
        SendIke(V6, V6, b""),
        RequestCounters(),
        Shutdown(),
    ],
)
def test_control_round_trip(msg: object) -> None:
    assert decode_control(encode_control(msg)) == msg  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "ev",
    [
        IkeDatagram(V4, V6, b"payload"),
        SaSignal(b"\x00\x00\x01\x01", "seq_exhausting"),
        SaSignal(b"\x00\x00\x01\x01", "hard_lifetime"),
        Acquire(ip_address("10.0.0.1"), ip_address("10.0.0.2"), 6),
        Ready("pyi0", 7, 1400, True, 1234),
        Failed("port 4500 in use"),
        Counters((SaCounters(b"\x00\x00\x00\x01", b"\x00\x00\x00\x02", *range(9)),), (("unknown_spi", 3),)),
    ],
)
def test_event_round_trip(ev: object) -> None:
    assert decode_event(encode_event(ev)) == (ev, True)  # type: ignore[arg-type]


def test_counters_are_paged() -> None:
    sas = tuple(SaCounters(i.to_bytes(4, "big"), b"\x00\x00\x00\x00", packets_in=i) for i in range(450))
    parts = encode_counters(Counters(sas, (("x", 1),)))
    assert len(parts) == 3
    decoded = [decode_event(p) for p in parts]
    assert [last for _, last in decoded] == [False, False, True]
    got = [s for ev, _ in decoded for s in ev.sas]  # type: ignore[union-attr]
    assert tuple(got) == sas
    assert decoded[-1][0].total("x") == 1  # type: ignore[union-attr]


def test_keys_never_in_repr() -> None:
    text = repr(_policy()) + repr(InstallChild(_policy()))
    assert SECRET.hex() not in text and repr(SECRET) not in text
    assert "encr_key_in" not in text


@pytest.mark.parametrize(
    "data", [b"", b"X", b"J{", b"J[]", b'J{"op":"nope"}', b'J{"op":"install"}', b"I\x04"]
)
def test_garbage_is_refused(data: bytes) -> None:
    with pytest.raises(DataplaneError):
        decode_control(data)
    with pytest.raises(DataplaneError):
        decode_event(data)


def test_policy_validation() -> None:
    with pytest.raises(ValueError, match="4 bytes"):
        _policy(spi_in=b"\x01")
    with pytest.raises(ValueError, match="mode"):
        _policy(mode="bogus")
    with pytest.raises(ValueError, match="families"):
        _policy(remote=V6)
