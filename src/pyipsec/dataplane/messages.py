"""Data-plane channel messages and their encoding (see :mod:`pyipsec.dataplane.channel`).

Theory of operation
-------------------
Each message is one ``SOCK_SEQPACKET`` packet; its first byte says what follows: ``b"I"`` an IKE
datagram on the NAT-T port (``local ‖ remote ‖ payload``, each endpoint as ``version(1) ‖
address(16, IPv4 left-aligned) ‖ port(2)``, the payload without the non-ESP marker of RFC 3948
§2.2), or ``b"J"`` one JSON object: ``{"op": ...}`` towards the data plane, ``{"ev": ...}`` back.
An ``install`` message carries one :class:`~pyipsec.childsa.ChildSaSpec`, the engine's own
description of the Child SA, field by field (:func:`spec_to_json`); its traffic selectors go as
``[ts_type, ip_protocol, start_port, end_port, start_addr, end_addr]``. Keys travel hex-encoded
inside an ``install`` message and nowhere else; nothing logs a message body, and the spec keeps
its keys out of ``repr``. Decoders raise :class:`DataplaneError` on anything malformed.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Literal, TypeAlias

from pyipsec.childsa import ChildSaSpec, EspMode, Lifetimes
from pyipsec.errors import PyIpsecError
from pyipsec.iana.ikev2 import TsType
from pyipsec.iana.transforms import EncrId, IntegId
from pyipsec.net.addr import Endpoint, IPAddress
from pyipsec.wire.payloads.ts import TrafficSelector

__all__ = [
    "Acquire",
    "ActivateOutbound",
    "SendKeepalive",
    "UpdateEndpoints",
    "ControlMessage",
    "Counters",
    "DataplaneClosed",
    "DataplaneError",
    "DataplaneEvent",
    "Failed",
    "IkeDatagram",
    "InstallChild",
    "Ready",
    "RemoveChild",
    "RequestCounters",
    "SaCounters",
    "SaSignal",
    "SendIke",
    "Shutdown",
    "WireEvent",
    "decode_control",
    "decode_event",
    "decode_ike",
    "encode_control",
    "encode_counters",
    "encode_event",
    "encode_ike",
    "spec_from_json",
    "spec_to_json",
]

_EP = struct.Struct(">B16sH")
_COUNTERS_PAGE = 200


class DataplaneError(PyIpsecError):
    """The data plane could not start, or its channel broke."""


# --- messages ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InstallChild:
    spec: ChildSaSpec


@dataclass(frozen=True, slots=True)
class RemoveChild:
    spi_in: bytes


@dataclass(frozen=True, slots=True)
class ActivateOutbound:
    """Let a child carry outbound traffic (the rekey switch-over), or with ``active`` False stop
    it doing so while it still receives (a replaced child lingering for late inbound ESP)."""

    spi_in: bytes
    active: bool = True


@dataclass(frozen=True, slots=True)
class UpdateEndpoints:
    """Send this child's ESP between new endpoints (MOBIKE, NAT rebinding); keys and counters stay."""

    spi_in: bytes
    local: Endpoint
    remote: Endpoint
    encap: bool


@dataclass(frozen=True, slots=True)
class SendKeepalive:
    """Send a NAT keepalive, the single octet 0xFF (RFC 3948 §2.3), from the NAT-T port."""

    local: Endpoint
    remote: Endpoint


@dataclass(frozen=True, slots=True)
class SendIke:
    local: Endpoint
    remote: Endpoint
    payload: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class RequestCounters:
    """Answered by one ``Counters`` once everything sent before is applied; ``sas=False``: an
    empty one (a barrier, without listing every SA)."""

    sas: bool = True


@dataclass(frozen=True, slots=True)
class Shutdown:
    pass


ControlMessage: TypeAlias = (
    InstallChild
    | RemoveChild
    | ActivateOutbound
    | UpdateEndpoints
    | SendKeepalive
    | SendIke
    | RequestCounters
    | Shutdown
)


@dataclass(frozen=True, slots=True)
class IkeDatagram:
    """An IKE message that arrived on the NAT-T port (marker stripped)."""

    local: Endpoint
    remote: Endpoint
    payload: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class SaCounters:
    """Counters of one Child SA (inbound SA drops, both directions' traffic)."""

    spi_in: bytes
    spi_out: bytes
    packets_in: int = 0
    bytes_in: int = 0
    packets_out: int = 0
    bytes_out: int = 0
    replay_drops: int = 0
    integrity_failures: int = 0
    policy_drops: int = 0
    pad_errors: int = 0
    malformed: int = 0


@dataclass(frozen=True, slots=True)
class Counters:
    """The answer to :meth:`DataplaneHandle.request_counters`: per SA and global counters."""

    sas: tuple[SaCounters, ...]
    totals: tuple[tuple[str, int], ...] = ()

    def total(self, name: str) -> int:
        return dict(self.totals).get(name, 0)

    def sa(self, spi_in: bytes) -> SaCounters | None:
        return next((s for s in self.sas if s.spi_in == spi_in), None)


@dataclass(frozen=True, slots=True)
class SaSignal:
    """A Child SA needs the control plane: rekey (soft, seq) or it is gone (hard)."""

    spi: bytes  # the child's inbound SPI
    kind: Literal["seq_exhausting", "soft_lifetime", "hard_lifetime"]


@dataclass(frozen=True, slots=True)
class Acquire:
    """Outbound traffic matched no policy (rate-limited per destination)."""

    src: IPAddress
    dst: IPAddress
    protocol: int


@dataclass(frozen=True, slots=True)
class Ready:
    """The data plane is up: TUN device created and configured, sockets bound."""

    tun: str
    ifindex: int
    mtu: int
    offload: bool
    pid: int


@dataclass(frozen=True, slots=True)
class Failed:
    message: str


@dataclass(frozen=True, slots=True)
class DataplaneClosed:
    """The channel closed: the data-plane process exited (``returncode`` if known)."""

    returncode: int | None


DataplaneEvent: TypeAlias = IkeDatagram | Counters | SaSignal | Acquire | DataplaneClosed
WireEvent: TypeAlias = IkeDatagram | Counters | SaSignal | Acquire | Ready | Failed


# --- encoding ---------------------------------------------------------------------------------


def _ep(e: Endpoint) -> bytes:
    return _EP.pack(e.ip.version, e.ip.packed.ljust(16, b"\0"), e.port)


def _unep(data: bytes, off: int) -> Endpoint:
    version, raw, port = _EP.unpack_from(data, off)
    if version == 4:
        return Endpoint(IPv4Address(raw[:4]), port)
    if version == 6:
        return Endpoint(IPv6Address(raw), port)
    raise DataplaneError(f"bad endpoint address family {version}")


def encode_ike(local: Endpoint, remote: Endpoint, payload: bytes) -> bytes:
    return b"I" + _ep(local) + _ep(remote) + payload


def decode_ike(data: bytes) -> tuple[Endpoint, Endpoint, bytes]:
    if len(data) < 1 + 2 * _EP.size:
        raise DataplaneError("short IKE message on the channel")
    return _unep(data, 1), _unep(data, 1 + _EP.size), data[1 + 2 * _EP.size :]


_LIFETIMES = ("soft_bytes", "hard_bytes", "soft_packets", "hard_packets", "soft_seconds", "hard_seconds")


def _ts_json(ts: TrafficSelector) -> list[object]:
    return [int(ts.ts_type), ts.ip_protocol, ts.start_port, ts.end_port, str(ts.start_addr), str(ts.end_addr)]


def _int(v: object) -> int:
    if type(v) is not int:
        raise TypeError
    return v


def _opt_int(v: object) -> int | None:
    return None if v is None else _int(v)


def _opt_num(v: object) -> float | None:
    if v is None or (isinstance(v, int | float) and not isinstance(v, bool)):
        return v
    raise TypeError


def _bool(v: object) -> bool:
    if type(v) is not bool:
        raise TypeError
    return v


def _hex(v: object) -> bytes:
    if type(v) is not str:
        raise TypeError
    return bytes.fromhex(v)


def _list(v: object, n: int) -> list[object]:
    if type(v) is not list or len(v) != n:
        raise TypeError
    return v


def _addr(v: object) -> IPAddress:
    if type(v) is not str:
        raise TypeError
    return ip_address(v)


def _ts_from(v: object) -> TrafficSelector:
    ts_type, proto, lo, hi, first, last = _list(v, 6)
    return TrafficSelector(TsType(_int(ts_type)), _int(proto), _int(lo), _int(hi), _addr(first), _addr(last))


def _tss_from(v: object) -> tuple[TrafficSelector, ...]:
    if type(v) is not list:
        raise TypeError
    return tuple(_ts_from(t) for t in v)


def _ep_from(v: object) -> Endpoint:
    ip, port = _list(v, 2)
    return Endpoint(_addr(ip), _int(port))


def _lifetimes_from(v: object) -> Lifetimes | None:
    if v is None:
        return None
    if type(v) is not dict or set(v) != set(_LIFETIMES):
        raise TypeError
    return Lifetimes(
        soft_bytes=_opt_int(v["soft_bytes"]),
        hard_bytes=_opt_int(v["hard_bytes"]),
        soft_packets=_opt_int(v["soft_packets"]),
        hard_packets=_opt_int(v["hard_packets"]),
        soft_seconds=_opt_num(v["soft_seconds"]),
        hard_seconds=_opt_num(v["hard_seconds"]),
    )


def spec_to_json(spec: ChildSaSpec) -> dict[str, object]:
    """A Child SA as the JSON object of an ``install`` message (keys hex-encoded)."""
    lt = spec.lifetimes
    return {
        "spi_in": spec.spi_in.hex(),
        "spi_out": spec.spi_out.hex(),
        "encr": int(spec.encr),
        "encr_key_bits": spec.encr_key_bits,
        "integ": int(spec.integ),
        "ek_in": spec.encr_key_in.hex(),
        "ik_in": spec.integ_key_in.hex(),
        "ek_out": spec.encr_key_out.hex(),
        "ik_out": spec.integ_key_out.hex(),
        "esn": spec.esn,
        "mode": spec.mode.value,
        "local_ts": [_ts_json(t) for t in spec.local_ts],
        "remote_ts": [_ts_json(t) for t in spec.remote_ts],
        "local": [str(spec.local.ip), spec.local.port],
        "remote": [str(spec.remote.ip), spec.remote.port],
        "encap": spec.encap,
        "replay_window": spec.replay_window,
        "lifetimes": None if lt is None else {k: getattr(lt, k) for k in _LIFETIMES},
        "outbound_active": spec.outbound_active,
    }


def spec_from_json(d: dict[str, object]) -> ChildSaSpec:
    """Inverse of :func:`spec_to_json`; raises KeyError, TypeError or ValueError on garbage
    (:func:`decode_control` turns those into :class:`DataplaneError`)."""
    return ChildSaSpec(
        spi_in=_hex(d["spi_in"]),
        spi_out=_hex(d["spi_out"]),
        encr=EncrId(_int(d["encr"])),
        encr_key_bits=_int(d["encr_key_bits"]),
        integ=IntegId(_int(d["integ"])),
        encr_key_in=_hex(d["ek_in"]),
        integ_key_in=_hex(d["ik_in"]),
        encr_key_out=_hex(d["ek_out"]),
        integ_key_out=_hex(d["ik_out"]),
        esn=_bool(d["esn"]),
        mode=EspMode(d["mode"]),
        local_ts=_tss_from(d["local_ts"]),
        remote_ts=_tss_from(d["remote_ts"]),
        local=_ep_from(d["local"]),
        remote=_ep_from(d["remote"]),
        encap=_bool(d["encap"]),
        replay_window=_int(d["replay_window"]),
        lifetimes=_lifetimes_from(d["lifetimes"]),
        outbound_active=_bool(d["outbound_active"]),
    )


def _json(obj: dict[str, object]) -> bytes:
    return b"J" + json.dumps(obj, separators=(",", ":")).encode()


def encode_control(msg: ControlMessage) -> bytes:
    """One channel message towards the data plane."""
    if isinstance(msg, SendIke):
        return encode_ike(msg.local, msg.remote, msg.payload)
    if isinstance(msg, InstallChild):
        return _json({"op": "install", "child": spec_to_json(msg.spec)})
    if isinstance(msg, RemoveChild):
        return _json({"op": "remove", "spi_in": msg.spi_in.hex()})
    if isinstance(msg, ActivateOutbound):
        return _json({"op": "activate", "spi_in": msg.spi_in.hex(), "active": msg.active})
    if isinstance(msg, SendKeepalive):
        return _json(
            {
                "op": "keepalive",
                "local": [str(msg.local.ip), msg.local.port],
                "remote": [str(msg.remote.ip), msg.remote.port],
            }
        )
    if isinstance(msg, UpdateEndpoints):
        return _json(
            {
                "op": "move",
                "spi_in": msg.spi_in.hex(),
                "local": [str(msg.local.ip), msg.local.port],
                "remote": [str(msg.remote.ip), msg.remote.port],
                "encap": msg.encap,
            }
        )
    if isinstance(msg, RequestCounters):
        return _json({"op": "counters"} if msg.sas else {"op": "counters", "sas": False})
    return _json({"op": "shutdown"})


def _load(data: bytes) -> dict[str, object]:
    try:
        obj = json.loads(data[1:])
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise DataplaneError(f"undecodable channel message: {exc}") from None
    if not isinstance(obj, dict):
        raise DataplaneError("channel message is not an object")
    return obj


def decode_control(data: bytes) -> ControlMessage:
    """Inverse of :func:`encode_control`; raises :class:`DataplaneError` on garbage."""
    if data[:1] == b"I":
        return SendIke(*decode_ike(data))
    if data[:1] != b"J":
        raise DataplaneError("unknown channel message type")
    obj = _load(data)
    op = obj.get("op")
    try:
        if op == "install":
            child = obj["child"]
            assert isinstance(child, dict)
            return InstallChild(spec_from_json(child))
        if op == "remove":
            return RemoveChild(bytes.fromhex(str(obj["spi_in"])))
        if op == "activate":
            return ActivateOutbound(bytes.fromhex(str(obj["spi_in"])), obj.get("active", True) is not False)
        if op == "keepalive":
            ka_local, ka_remote = obj["local"], obj["remote"]
            assert isinstance(ka_local, list) and isinstance(ka_remote, list)
            return SendKeepalive(
                Endpoint.parse(str(ka_local[0]), int(str(ka_local[1]))),
                Endpoint.parse(str(ka_remote[0]), int(str(ka_remote[1]))),
            )
        if op == "move":
            local, remote = obj["local"], obj["remote"]
            assert isinstance(local, list) and isinstance(remote, list)
            return UpdateEndpoints(
                bytes.fromhex(str(obj["spi_in"])),
                Endpoint.parse(str(local[0]), int(str(local[1]))),
                Endpoint.parse(str(remote[0]), int(str(remote[1]))),
                obj["encap"] is True,
            )
    except (KeyError, IndexError, ValueError, TypeError, AssertionError) as exc:
        raise DataplaneError(f"bad {op} message: {type(exc).__name__}") from None
    if op == "counters":
        return RequestCounters(obj.get("sas", True) is not False)
    if op == "shutdown":
        return Shutdown()
    raise DataplaneError(f"unknown operation {op!r}")


def _sa_json(s: SaCounters) -> list[object]:
    return [
        s.spi_in.hex(),
        s.spi_out.hex(),
        s.packets_in,
        s.bytes_in,
        s.packets_out,
        s.bytes_out,
        s.replay_drops,
        s.integrity_failures,
        s.policy_drops,
        s.pad_errors,
        s.malformed,
    ]


def _sa_from(v: list[object]) -> SaCounters:
    return SaCounters(bytes.fromhex(str(v[0])), bytes.fromhex(str(v[1])), *(int(str(x)) for x in v[2:11]))


def encode_event(ev: WireEvent, *, last: bool = True) -> bytes:
    """One channel message towards the control plane (counters may need several: see
    :func:`encode_counters`)."""
    if isinstance(ev, IkeDatagram):
        return encode_ike(ev.local, ev.remote, ev.payload)
    if isinstance(ev, Counters):
        return _json(
            {"ev": "counters", "sas": [_sa_json(s) for s in ev.sas], "totals": dict(ev.totals), "last": last}
        )
    if isinstance(ev, SaSignal):
        return _json({"ev": "signal", "spi": ev.spi.hex(), "kind": ev.kind})
    if isinstance(ev, Acquire):
        return _json({"ev": "acquire", "src": str(ev.src), "dst": str(ev.dst), "protocol": ev.protocol})
    if isinstance(ev, Ready):
        return _json(
            {
                "ev": "ready",
                "tun": ev.tun,
                "ifindex": ev.ifindex,
                "mtu": ev.mtu,
                "offload": ev.offload,
                "pid": ev.pid,
            }
        )
    return _json({"ev": "error", "message": ev.message})


def encode_counters(ev: Counters) -> list[bytes]:
    """A Counters event as one or more messages (pages of SAs; the last one carries totals)."""
    pages = [ev.sas[i : i + _COUNTERS_PAGE] for i in range(0, len(ev.sas), _COUNTERS_PAGE)] or [()]
    out = []
    for n, page in enumerate(pages):
        last = n == len(pages) - 1
        out.append(encode_event(Counters(tuple(page), ev.totals if last else ()), last=last))
    return out


def decode_event(data: bytes) -> tuple[WireEvent, bool]:
    """``(event, last)``; ``last`` is False for a Counters page that more pages follow."""
    if data[:1] == b"I":
        return IkeDatagram(*decode_ike(data)), True
    if data[:1] != b"J":
        raise DataplaneError("unknown channel message type")
    obj = _load(data)
    ev = obj.get("ev")
    try:
        if ev == "counters":
            sas = obj["sas"]
            totals = obj["totals"]
            assert isinstance(sas, list) and isinstance(totals, dict)
            return (
                Counters(
                    tuple(_sa_from(s) for s in sas),
                    tuple(sorted((str(k), int(v)) for k, v in totals.items())),
                ),
                bool(obj.get("last", True)),
            )
        if ev == "signal":
            kind = str(obj["kind"])
            if kind not in ("seq_exhausting", "soft_lifetime", "hard_lifetime"):
                raise ValueError(kind)
            return SaSignal(bytes.fromhex(str(obj["spi"])), kind), True  # type: ignore[arg-type]
        if ev == "acquire":
            return (
                Acquire(ip_address(str(obj["src"])), ip_address(str(obj["dst"])), int(str(obj["protocol"]))),
                True,
            )
        if ev == "ready":
            return (
                Ready(
                    str(obj["tun"]),
                    int(str(obj["ifindex"])),
                    int(str(obj["mtu"])),
                    bool(obj["offload"]),
                    int(str(obj["pid"])),
                ),
                True,
            )
        if ev == "error":
            return Failed(str(obj["message"])), True
    except (KeyError, IndexError, ValueError, TypeError, AssertionError) as exc:
        raise DataplaneError(f"bad {ev} event: {type(exc).__name__}") from None
    raise DataplaneError(f"unknown event {ev!r}")
