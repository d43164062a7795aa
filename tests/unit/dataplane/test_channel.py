"""Channel messages: every message round-trips; keys stay out of reprs; garbage is refused."""

from __future__ import annotations

import json
from ipaddress import ip_address

import pytest

from pyipsec.childsa import ChildSaSpec, EspMode, Lifetimes
from pyipsec.dataplane.messages import (
    Acquire,
    ActivateOutbound,
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
    spec_from_json,
    spec_to_json,
)
from pyipsec.iana.transforms import EncrId, IntegId
from pyipsec.net.addr import Endpoint
from pyipsec.wire.payloads.ts import OPAQUE_PORTS, TrafficSelector

V4 = Endpoint(ip_address("192.0.2.1"), 4500)
V6 = Endpoint(ip_address("2001:db8::2"), 4500)
SECRET = bytes(range(32))
NO_LIMITS = dict.fromkeys(
    ("soft_bytes", "hard_bytes", "soft_packets", "hard_packets", "soft_seconds", "hard_seconds")
)


def _spec(**kw: object) -> ChildSaSpec:
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
        "mode": EspMode.TUNNEL,
        "local_ts": (
            TrafficSelector.from_network("10.1.0.0/16"),
            TrafficSelector.from_range("10.3.0.1", "10.3.0.9", protocol=1, ports=(0x0800, 0x08FF)),
        ),
        "remote_ts": (TrafficSelector.from_range("fd00::", "fd00::ffff", protocol=6, ports=(80, 443)),),
        "local": V4,
        "remote": Endpoint(ip_address("192.0.2.2"), 4500),
        "encap": False,
        "replay_window": 4096,
        "lifetimes": Lifetimes(soft_bytes=10, hard_seconds=3600.0),
        "outbound_active": False,
    }
    base.update(kw)
    return ChildSaSpec(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "msg",
    [
        InstallChild(_spec()),
        InstallChild(
            _spec(
                lifetimes=None,
                encr=EncrId.ENCR_AES_GCM_16,
                integ=IntegId.NONE,
                integ_key_in=b"",
                integ_key_out=b"",
            )
        ),
        InstallChild(_spec(mode=EspMode.TRANSPORT, outbound_active=True, esn=False, encap=True)),
        InstallChild(_spec(local=V6, remote=V6, lifetimes=Lifetimes(hard_packets=5, soft_seconds=1.5))),
        InstallChild(
            _spec(remote_ts=(TrafficSelector.from_network("10.9.0.0/16", protocol=17, ports=OPAQUE_PORTS),))
        ),
        RemoveChild(b"\x01\x02\x03\x04"),
        ActivateOutbound(b"\x01\x02\x03\x04"),
        ActivateOutbound(b"\x01\x02\x03\x04", active=False),
        UpdateEndpoints(b"\x01\x02\x03\x04", V4, Endpoint(ip_address("198.51.100.7"), 31337), True),
        UpdateEndpoints(b"\x01\x02\x03\x04", V6, V6, False),
        SendKeepalive(V4, Endpoint(ip_address("198.51.100.7"), 61000)),
        SendIke(V4, Endpoint(ip_address("198.51.100.7"), 61000), b"\x00" * 3 + b"ike"),
        SendIke(V6, V6, b""),
        RequestCounters(),
        RequestCounters(sas=False),
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
    text = repr(_spec()) + repr(InstallChild(_spec())) + str(_spec())
    assert SECRET.hex() not in text and repr(SECRET) not in text
    assert "encr_key_in" not in text and "integ_key_out" not in text


@pytest.mark.parametrize(
    "data", [b"", b"X", b"J{", b"J[]", b'J{"op":"nope"}', b'J{"op":"install"}', b"I\x04"]
)
def test_garbage_is_refused(data: bytes) -> None:
    with pytest.raises(DataplaneError):
        decode_control(data)
    with pytest.raises(DataplaneError):
        decode_event(data)


def _install(**changes: object) -> bytes:
    """An install message for :func:`_spec` with some JSON fields replaced (None: removed)."""
    child = spec_to_json(_spec())
    for key, value in changes.items():
        if value is None:
            del child[key]
        else:
            child[key] = value
    return b"J" + json.dumps({"op": "install", "child": child}).encode()


def test_the_install_message_carries_the_spec_field_by_field() -> None:
    child = json.loads(encode_control(InstallChild(_spec()))[1:])["child"]
    assert child["mode"] == "tunnel" and child["ek_in"] == SECRET.hex()
    assert child["local_ts"][1] == [7, 1, 0x0800, 0x08FF, "10.3.0.1", "10.3.0.9"]
    assert child["remote_ts"] == [[8, 6, 80, 443, "fd00::", "fd00::ffff"]]
    assert spec_from_json(child) == _spec()


@pytest.mark.parametrize(
    "changes",
    [
        {"spi_in": "0102"},  # not 4 bytes
        {"spi_in": "zz"},
        {"spi_out": 5},
        {"mode": "bogus"},
        {"mode": None},
        {"esn": 1},
        {"encr": "12"},
        {"encr": 1.5},
        {"replay_window": True},
        {"ek_in": ["00"]},
        {"local": ["192.0.2.1"]},
        {"local": ["192.0.2.1", "4500"]},
        {"remote": ["2001:db8::2", 4500]},  # another address family than local
        {"remote": "192.0.2.2:4500"},
        {"local_ts": []},  # a Child SA has selectors
        {"local_ts": {}},
        {"local_ts": [[7, 0, 0, 65535, "10.0.0.0"]]},
        {"local_ts": [[7, 0, 0, 65535, "10.0.0.0", "10.0.0.255", 1]]},
        {"local_ts": [[7, 0, 0, 65535, "fd00::", "fd00::1"]]},  # IPv4 type, IPv6 addresses
        {"local_ts": [[9, 0, 0, 65535, "10.0.0.0", "10.0.0.255"]]},  # not an address range type
        {"local_ts": [[7, 256, 0, 65535, "10.0.0.0", "10.0.0.255"]]},
        {"local_ts": [[7, 0, 0, 65536, "10.0.0.0", "10.0.0.255"]]},
        {"local_ts": [[7, 0, 0, 65535, "10.0.0.0", "10.0.0.999"]]},
        {"local_ts": [[7, 0, 0, 65535, 167772160, "10.0.0.255"]]},
        {"lifetimes": {"soft_bytes": 1}},  # every limit is named
        {"lifetimes": {**NO_LIMITS, "soft_bytes": "1"}},
        {"lifetimes": {**NO_LIMITS, "hard_packets": 1.5}},
        {"lifetimes": {**NO_LIMITS, "hard_seconds": "1"}},
        {"lifetimes": {**NO_LIMITS, "surprise": 1}},
        {"lifetimes": [1, 2]},
        {"outbound_active": None},
        {"outbound_active": "false"},
    ],
)
def test_bad_install_messages_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(DataplaneError, match="bad install message"):
        decode_control(_install(**changes))


def test_deeply_nested_garbage_is_refused() -> None:
    with pytest.raises(DataplaneError):
        decode_control(b"J" + b"[" * 100_000)
    with pytest.raises(DataplaneError):
        decode_event(b"J" + b"{" * 100_000)


def test_short_lists_are_refused() -> None:
    with pytest.raises(DataplaneError):
        decode_control(b'J{"op":"keepalive","local":["192.0.2.1"],"remote":[]}')
    with pytest.raises(DataplaneError):
        decode_control(b'J{"op":"move","spi_in":"00","local":[],"remote":[],"encap":true}')
    with pytest.raises(DataplaneError):
        decode_event(b'J{"ev":"counters","sas":[[]],"totals":{}}')
