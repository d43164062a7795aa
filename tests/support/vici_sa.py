"""Values exchanged with charon's vici interface, and the SA records parsed from ``list-sas``.

The ``vici`` package speaks bytes: it sends ``str``/``bytes`` leaves, lists and nested dicts, and
returns ordered dicts of ``bytes``. :func:`encode_vici` and :func:`decode_vici` convert at that
boundary so the harness works in ``str``; :class:`IkeSa` and :class:`ChildSa` give typed access to
the fields tests compare (states, SPIs as the hex strings vici prints, endpoints, selectors) and
keep the whole decoded dict in ``raw`` (e.g. ``raw["encr-alg"]``, ``raw["packets-in"]``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "ChildSa",
    "IkeSa",
    "ViciIn",
    "ViciOut",
    "decode_vici",
    "encode_vici",
    "list_field",
    "str_field",
]

ViciIn = str | int | bytes | Sequence[str] | Mapping[str, "ViciIn"]
"""A value sent to vici (ints are sent as decimal strings)."""

ViciOut = str | list["ViciOut"] | dict[str, "ViciOut"]
"""A value received from vici, bytes decoded to ``str``."""


def decode_vici(value: object) -> ViciOut:
    """vici's reply (bytes, dicts, lists) with every bytes value decoded to ``str``."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, Mapping):
        return {str(k): decode_vici(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [decode_vici(v) for v in value]
    return str(value)


def encode_vici(value: ViciIn) -> object:
    """A message for the vici package: ints become decimal strings, sequences lists."""
    if isinstance(value, str | bytes):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Mapping):
        return {k: encode_vici(v) for k, v in value.items()}
    return [str(v) for v in value]


def str_field(d: Mapping[str, ViciOut], key: str) -> str:
    """``d[key]`` if it is a string, else the empty string."""
    v = d.get(key, "")
    return v if isinstance(v, str) else ""


def list_field(d: Mapping[str, ViciOut], key: str) -> tuple[str, ...]:
    """The strings of the list ``d[key]`` (empty if absent)."""
    v = d.get(key, [])
    return tuple(x for x in v if isinstance(x, str)) if isinstance(v, list) else ()


@dataclass(frozen=True, slots=True)
class ChildSa:
    """One CHILD_SA as reported by ``list-sas`` (SPIs as vici prints them: hex strings)."""

    name: str
    uniqueid: str
    state: str
    protocol: str
    mode: str
    encap: bool
    spi_in: str
    spi_out: str
    local_ts: tuple[str, ...]
    remote_ts: tuple[str, ...]
    raw: dict[str, ViciOut] = field(repr=False, compare=False)

    @classmethod
    def from_vici(cls, d: dict[str, ViciOut]) -> ChildSa:
        return cls(
            name=str_field(d, "name"),
            uniqueid=str_field(d, "uniqueid"),
            state=str_field(d, "state"),
            protocol=str_field(d, "protocol"),
            mode=str_field(d, "mode"),
            encap=str_field(d, "encap") == "yes",
            spi_in=str_field(d, "spi-in"),
            spi_out=str_field(d, "spi-out"),
            local_ts=list_field(d, "local-ts"),
            remote_ts=list_field(d, "remote-ts"),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class IkeSa:
    """One IKE_SA as reported by ``list-sas`` (SPIs as vici prints them: hex strings)."""

    name: str
    uniqueid: str
    state: str
    initiator: bool
    spi_i: str
    spi_r: str
    local_host: str
    local_port: int
    remote_host: str
    remote_port: int
    local_id: str
    remote_id: str
    children: tuple[ChildSa, ...]
    raw: dict[str, ViciOut] = field(repr=False, compare=False)

    @classmethod
    def from_vici(cls, name: str, d: dict[str, ViciOut]) -> IkeSa:
        children_raw = d.get("child-sas", {})
        children = (
            tuple(ChildSa.from_vici(c) for c in children_raw.values() if isinstance(c, dict))
            if isinstance(children_raw, dict)
            else ()
        )
        return cls(
            name=name,
            uniqueid=str_field(d, "uniqueid"),
            state=str_field(d, "state"),
            initiator=str_field(d, "initiator") == "yes",
            spi_i=str_field(d, "initiator-spi"),
            spi_r=str_field(d, "responder-spi"),
            local_host=str_field(d, "local-host"),
            local_port=int(str_field(d, "local-port") or 0),
            remote_host=str_field(d, "remote-host"),
            remote_port=int(str_field(d, "remote-port") or 0),
            local_id=str_field(d, "local-id"),
            remote_id=str_field(d, "remote-id"),
            children=children,
            raw=d,
        )

    def child(self, name: str) -> ChildSa | None:
        """The first CHILD_SA called ``name``, if any."""
        return next((c for c in self.children if c.name == name), None)
