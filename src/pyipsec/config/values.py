"""Value types of the configuration and their parsers, and the error plumbing of the models.

Theory of operation: each config string that means more than a string is parsed once, while
validating, into a small frozen value: :class:`TsSpec` (a traffic selector, RFC 7296
§3.13.1), :class:`AddressSpec` (a ``local_addrs``/``remote_addrs`` entry), an IP address,
a duration, a secret, a pool range, a listening ``ADDR:PORT`` (:class:`HostPort`). Parsers
raise ``ValueError`` with a message that quotes the offending text; the ``Annotated`` aliases
at the end plug them into pydantic, so a model field such as ``local_ts: TsList`` validates and
serialises itself. :func:`raise_issues` raises problems found by a model validator at key paths
relative to that model (pydantic prefixes the model's own location), which is how cross-field
errors still name their key.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, NoReturn, TypeAlias, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    ValidationInfo,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from pyipsec.config.ids import Identity, parse_identity
from pyipsec.errors import ConfigError
from pyipsec.iana.ikev2 import ProtocolId
from pyipsec.ike.proposal import ProposalSpec
from pyipsec.ike.proposal_text import LEGACY_KEYWORDS, format_proposal, parse_proposals

__all__ = [
    "AddressSpec",
    "Count",
    "DirRef",
    "FileList",
    "FileRef",
    "IPAddr",
    "IPAddrList",
    "IPAddress",
    "IdList",
    "IdValue",
    "KeyPath",
    "LocalAddrList",
    "NameList",
    "NonEmpty",
    "Port",
    "Proposals",
    "RemoteAddrList",
    "Seconds",
    "SplitList",
    "TsList",
    "TsSpec",
    "allow_legacy",
    "fail_at",
    "from_string",
    "one_or_many",
    "parse_address_spec",
    "parse_duration",
    "parse_ip",
    "parse_proposal_list",
    "psk_weakness",
    "parse_secret",
    "parse_ts",
    "pool_range",
    "quote",
    "raise_issues",
    "range_or_network",
    "resolve_file",
    "seconds_float",
    "split_list",
    "validate_each",
]

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
_T = TypeVar("_T")
KeyPath = tuple[str | int, ...]


def quote(text: str) -> str:
    """``text`` in double quotes, as TOML would write it (for messages)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_ip(text: str) -> IPAddress:
    """An IPv4 or IPv6 address literal."""
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        raise ValueError(f"not an IP address: {quote(text)}") from None


@dataclass(frozen=True, slots=True)
class HostPort:
    """An ``ADDR:PORT`` to listen on (``[settings] metrics``); IPv6 in brackets: ``[::1]:9590``."""

    host: IPAddress
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if self.host.version == 6 else f"{self.host}:{self.port}"


def parse_host_port(text: str) -> HostPort:
    """``"127.0.0.1:9590"`` or ``"[::1]:9590"``: an IP address literal and a port 1-65535."""
    head, sep, port_text = text.strip().rpartition(":")
    if not sep or not head:
        raise ValueError(f'expected "ADDRESS:PORT" (IPv6 as "[::1]:9590"), got {quote(text)}')
    bracketed = head.startswith("[") and head.endswith("]")
    if bracketed:
        head = head[1:-1]
    try:
        host = ipaddress.ip_address(head)
    except ValueError:
        raise ValueError(f"not an IP address: {quote(head)} in {quote(text)}") from None
    if host.version == 6 and not bracketed:
        raise ValueError(f'an IPv6 address goes in brackets, as in "[::1]:9590": {quote(text)}')
    if host.version == 4 and bracketed:
        raise ValueError(f"only IPv6 addresses go in brackets: {quote(text)}")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"not a port (1-65535): {quote(port_text)} in {quote(text)}")
    return HostPort(host, int(port_text))


@dataclass(frozen=True, slots=True)
class TsSpec:
    """A traffic selector as written in ``local_ts``/``remote_ts`` (RFC 7296 §3.13.1).

    ``first``..``last`` is the address range, both ``None`` for ``dynamic`` (the IKE address
    or the virtual IP, swanctl's default); ``protocol`` 0 is any. Ports are the 16-bit range of
    the selector; for ICMP/ICMPv6 they hold type (high octet) and code (low octet).
    """

    text: str
    first: IPAddress | None
    last: IPAddress | None
    protocol: int = 0
    port_start: int = 0
    port_end: int = 0xFFFF

    @property
    def dynamic(self) -> bool:
        return self.first is None

    def __str__(self) -> str:
        return self.text


_PROTOCOLS = {
    "any": 0,
    "%any": 0,
    "icmp": 1,
    "igmp": 2,
    "tcp": 6,
    "udp": 17,
    "gre": 47,
    "esp": 50,
    "ah": 51,
    "icmpv6": 58,
    "ipv6-icmp": 58,
    "sctp": 132,
    "udplite": 136,
}
_PORT_PROTOCOLS = frozenset({6, 17, 132, 136})
_TS_RE = re.compile(r"(?P<addr>[^\[\]]*)(?:\[(?P<pp>[^\[\]]*)\])?")


def range_or_network(text: str) -> tuple[IPAddress, IPAddress]:
    """``a.b.c.d``, ``net/len`` or ``first-last`` → (first, last); ValueError names the text."""
    if "-" in text:
        lo, _, hi = text.partition("-")
        try:
            first, last = ipaddress.ip_address(lo.strip()), ipaddress.ip_address(hi.strip())
        except ValueError:
            raise ValueError(f"not a network or range: {quote(text)}") from None
        if first.version != last.version:
            raise ValueError(f"range mixes IPv4 and IPv6: {quote(text)}")
        if first > last:  # type: ignore[operator]  # same family, checked above
            raise ValueError(f"range runs backwards: {quote(text)}")
        return first, last
    try:
        net = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(f"not a network or range: {quote(text)}") from None
    if "/" in text and net.network_address != ipaddress.ip_interface(text.strip()).ip:
        raise ValueError(f"{quote(text)} has host bits set (did you mean {quote(str(net))}?)")
    return net.network_address, net.broadcast_address


def parse_ts(text: str) -> TsSpec:
    """Parse ``10.0.0.0/8``, ``10.0.0.1-10.0.0.9``, ``dynamic``, each with an optional swanctl
    ``[proto/port]`` suffix: ``[tcp/443]``, ``[udp/1000-2000]``, ``[47]``, ``[icmp/8]``."""
    match = _TS_RE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a network or range: {quote(text)}")
    addr = match.group("addr").strip()
    first: IPAddress | None
    last: IPAddress | None
    if addr.lower() in ("dynamic", "%dynamic"):
        first = last = None
    else:
        first, last = range_or_network(addr)
    protocol, port_start, port_end = 0, 0, 0xFFFF
    pp = match.group("pp")
    if pp is not None:
        proto_text, _, port_text = pp.partition("/")
        proto_text = proto_text.strip().lower()
        if proto_text in _PROTOCOLS:
            protocol = _PROTOCOLS[proto_text]
        elif proto_text.isdigit() and int(proto_text) < 256:
            protocol = int(proto_text)
        elif proto_text:
            raise ValueError(f"unknown protocol {quote(proto_text)} in traffic selector {quote(text)}")
        port_start, port_end = _ports(protocol, port_text.strip(), text)
    if first is not None and protocol == 1 and first.version == 6:
        raise ValueError(f"icmp does not apply to IPv6 (use icmpv6): {quote(text)}")
    if first is not None and protocol == 58 and first.version == 4:
        raise ValueError(f"icmpv6 does not apply to IPv4 (use icmp): {quote(text)}")
    return TsSpec(text.strip(), first, last, protocol, port_start, port_end)


def _ports(protocol: int, text: str, ts: str) -> tuple[int, int]:
    if text in ("", "%any"):
        return 0, 0xFFFF
    if protocol in (1, 58):  # ICMP: type[/code] in the port fields (RFC 7296 §3.13.1)
        icmp_type, _, code = text.partition("/")
        if (
            not icmp_type.isdigit()
            or int(icmp_type) > 255
            or (code and (not code.isdigit() or int(code) > 255))
        ):
            raise ValueError(f"bad ICMP type/code {quote(text)} in traffic selector {quote(ts)}")
        base = int(icmp_type) << 8
        return (base | int(code), base | int(code)) if code else (base, base | 0xFF)
    if protocol not in _PORT_PROTOCOLS:
        raise ValueError(f"ports apply to tcp, udp, sctp and udplite only: {quote(ts)}")
    lo, dash, hi = text.partition("-")
    if not lo.isdigit() or (dash and not hi.isdigit()):
        raise ValueError(f"port {quote(text)} is not a number or range in traffic selector {quote(ts)}")
    start, end = int(lo), int(hi) if dash else int(lo)
    if end > 0xFFFF or start > end:
        raise ValueError(f"bad port range {quote(text)} in traffic selector {quote(ts)}")
    return start, end


@dataclass(frozen=True, slots=True)
class AddressSpec:
    """An entry of ``local_addrs``/``remote_addrs``: ``%any`` (all fields None), ``%any4``/
    ``%any6`` (the family's whole range), an address, a subnet or range (``first``..``last``),
    or a ``hostname`` to resolve when initiating."""

    text: str
    first: IPAddress | None = None
    last: IPAddress | None = None
    hostname: str | None = None

    @property
    def is_any(self) -> bool:
        return self.first is None and self.hostname is None

    @property
    def address(self) -> IPAddress | None:
        """The single address this entry names, if it names exactly one."""
        return self.first if self.first is not None and self.first == self.last else None

    def contains(self, addr: IPAddress) -> bool:
        """Whether ``addr`` matches this entry (a hostname matches nothing until resolved)."""
        if self.is_any:
            return True
        if self.first is None or self.last is None or self.first.version != addr.version:
            return False
        return self.first <= addr <= self.last  # type: ignore[operator]  # same family

    def __str__(self) -> str:
        return self.text


_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*\.?")
_ANY_V4 = (ipaddress.IPv4Address(0), ipaddress.IPv4Address(2**32 - 1))
_ANY_V6 = (ipaddress.IPv6Address(0), ipaddress.IPv6Address(2**128 - 1))


def parse_address_spec(text: str, *, remote: bool) -> AddressSpec:
    """Parse an address entry; hostnames, subnets and ranges only when ``remote``."""
    value = text.strip()
    lowered = value.lower()
    if lowered == "%any":
        return AddressSpec(value)
    if lowered in ("%any4", "%any6"):
        return AddressSpec(value, *(_ANY_V4 if lowered == "%any4" else _ANY_V6))
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        pass
    else:
        return AddressSpec(value, addr, addr)
    if not remote:
        raise ValueError(f"not an IP address or %any: {quote(text)}")
    is_range = "-" in value and (":" in value or re.fullmatch(r"[\d.\s]+-[\d.\s]+", value) is not None)
    if "/" in value or is_range:
        return AddressSpec(value, *range_or_network(value))
    if re.fullmatch(r"[\d.]+", value) or not _HOSTNAME.fullmatch(value):
        raise ValueError(f"not an IP address, subnet, range, hostname or %any: {quote(text)}")
    return AddressSpec(value, hostname=value.rstrip("."))


_DURATION = re.compile(r"\s*(\d+)\s*([smhd]?)\s*")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: object) -> int:
    """Seconds from an integer or a string with an optional s/m/h/d suffix (swanctl style)."""
    if isinstance(value, bool):
        raise ValueError(f'expected a duration such as 3600 or "1h", got {str(value).lower()}')
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"duration must not be negative, got {value}")
        return value
    if isinstance(value, str):
        match = _DURATION.fullmatch(value)
        if match:
            return int(match.group(1)) * _UNIT[match.group(2)]
        raise ValueError(f'expected a duration such as 3600 or "1h", got {quote(value)}')
    raise ValueError(f'expected a duration such as 3600 or "1h", got {type(value).__name__}')


def seconds_float(value: object) -> float:
    if isinstance(value, float) and value >= 0:
        return value
    return float(parse_duration(value))


def split_list(value: object) -> object:
    """swanctl-style comma-separated string → list; anything else unchanged."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def one_or_many(value: object) -> object:
    """A single string is a one-element list (for values that may contain commas)."""
    return [value] if isinstance(value, str) else value


def from_string(parse: Callable[[str], _T]) -> Callable[[object], _T]:
    def validate(value: object) -> _T:
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {type(value).__name__}")
        try:
            return parse(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    return validate


def resolve_file(path: Path, info: ValidationInfo) -> Path:
    base = info.context.get("base_dir") if isinstance(info.context, dict) else None
    if not isinstance(base, Path):
        return path
    full = path.expanduser()
    if not full.is_absolute():
        full = base / full
    if not full.exists():
        raise ValueError(f"file not found: {quote(str(full))}")
    if not full.is_file():
        raise ValueError(f"not a file: {quote(str(full))}")
    return full


def resolve_dir(path: Path, info: ValidationInfo) -> Path:
    """A directory relative to the config file's; it need not exist yet, but must not be a file."""
    base = info.context.get("base_dir") if isinstance(info.context, dict) else None
    if not isinstance(base, Path):
        return path
    full = path.expanduser()
    if not full.is_absolute():
        full = base / full
    if full.exists() and not full.is_dir():
        raise ValueError(f"not a directory: {quote(str(full))}")
    return full


def fail_at(loc: KeyPath, message: str, value: object) -> NoReturn:
    """Raise one problem at ``loc`` (relative to the model being validated)."""
    raise_issues([(loc, message, value)], "config")
    raise AssertionError("unreachable")


def raise_issues(issues: Iterable[tuple[KeyPath, str, object]], title: str) -> None:
    """Raise the collected (relative key path, message, value) problems as one error."""
    details = [
        InitErrorDetails(
            type=PydanticCustomError("config", "{reason}", {"reason": msg}), loc=loc, input=value
        )
        for loc, msg, value in issues
    ]
    if details:
        raise ValidationError.from_exception_data(title, details)


IPAddr = Annotated[IPAddress, PlainValidator(from_string(parse_ip)), PlainSerializer(str)]
Ts = Annotated[TsSpec, PlainValidator(from_string(parse_ts)), PlainSerializer(str)]
LocalAddr = Annotated[
    AddressSpec,
    PlainValidator(from_string(lambda t: parse_address_spec(t, remote=False))),
    PlainSerializer(str),
]
RemoteAddr = Annotated[
    AddressSpec,
    PlainValidator(from_string(lambda t: parse_address_spec(t, remote=True))),
    PlainSerializer(str),
]
IdValue = Annotated[Identity, PlainValidator(from_string(parse_identity)), PlainSerializer(str)]
Seconds = Annotated[int, BeforeValidator(parse_duration)]
Count = Annotated[int, Field(strict=True, ge=0)]
Port = Annotated[int, Field(strict=True, ge=1, le=65535)]
HostPortValue = Annotated[HostPort, PlainValidator(from_string(parse_host_port)), PlainSerializer(str)]
FileRef = Annotated[Path, AfterValidator(resolve_file)]
DirRef = Annotated[Path, AfterValidator(resolve_dir)]
Proposals = Annotated[tuple[ProposalSpec, ...], PlainSerializer(lambda ps: [format_proposal(p) for p in ps])]


SplitList = BeforeValidator(split_list)
NonEmpty = Field(min_length=1)
IPAddrList = Annotated[tuple[IPAddr, ...], SplitList]
TsList = Annotated[tuple[Ts, ...], SplitList, NonEmpty]
LocalAddrList = Annotated[tuple[LocalAddr, ...], SplitList, NonEmpty]
RemoteAddrList = Annotated[tuple[RemoteAddr, ...], SplitList, NonEmpty]
FileList = Annotated[tuple[FileRef, ...], SplitList]
NameList = Annotated[tuple[str, ...], SplitList]
IdList = Annotated[tuple[IdValue, ...], BeforeValidator(one_or_many)]


def parse_proposal_list(value: object, protocol: ProtocolId, allow_legacy: bool) -> tuple[ProposalSpec, ...]:
    """Each list entry through :func:`parse_proposals`; errors keep their entry's index."""
    value = split_list(value)
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError("expected an array of proposal strings")
    if not value:
        raise ValueError('needs at least one proposal (or "default")')
    specs: list[ProposalSpec] = []
    problems: list[tuple[KeyPath, str, object]] = []
    for index, text in enumerate(value):
        try:
            specs += _proposals(text, protocol, allow_legacy)
        except ConfigError as exc:
            problems.append(((index,), str(exc), text))
    raise_issues(problems, "proposals")
    return tuple(specs)


def _proposals(text: str, protocol: ProtocolId, allow_legacy: bool) -> tuple[ProposalSpec, ...]:
    try:
        return parse_proposals(text, protocol=protocol, allow_legacy=allow_legacy)
    except ConfigError as strict:
        if allow_legacy:
            raise
        try:
            parse_proposals(text, protocol=protocol, allow_legacy=True)
        except ConfigError:
            raise strict from None
        words = [w.strip().lower() for part in text.split(",") for w in part.split("-")]
        legacy = [w for w in words if w in LEGACY_KEYWORDS or (w[:2] == "ke" and w[4:] in LEGACY_KEYWORDS)]
        names = ", ".join(quote(w) for w in dict.fromkeys(legacy))
        raise ConfigError(
            f"proposal {quote(text)} uses legacy algorithm {names} (RFC 8247); "
            "set legacy_algorithms = true on the connection to allow it"
        ) from None


def allow_legacy(info: ValidationInfo) -> bool:
    return isinstance(info.context, dict) and info.context.get("allow_legacy") is True


def pool_range(text: str) -> tuple[IPAddress, IPAddress]:
    """A range as written, or a subnet without its network (and IPv4 broadcast) address."""
    first, last = range_or_network(text)
    if "/" in text and last != first:
        low, high = int(first), int(last)
        if first.version == 4 and high - low >= 3:
            return ipaddress.IPv4Address(low + 1), ipaddress.IPv4Address(high - 1)
        if first.version == 6:
            return ipaddress.IPv6Address(low + 1), last
    return first, last


def parse_secret(value: object) -> bytes:
    """``"0x..."`` hex, ``"0s..."`` base64 (as in swanctl), else the UTF-8 string itself."""
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    try:
        if value[:2].lower() == "0x":
            return binascii.unhexlify(value[2:])
        if value[:2].lower() == "0s":
            return base64.b64decode(value[2:], validate=True)
    except (binascii.Error, ValueError):
        kind = "hex" if value[:2].lower() == "0x" else "base64"
        raise ValueError(f"the secret after {value[:2]!r} is not valid {kind}") from None
    if not value:
        raise ValueError("the secret is empty")
    return value.encode()


MIN_PSK_CHARS = 20
"""A pre-shared key typed as text needs at least this many characters (RELIABILITY.md C2)."""
MIN_PSK_BYTES = 16
"""A pre-shared key given as ``0x…`` hex, ``0s…`` base64 or a binary ``secret_file`` needs at
least this many bytes (128 bits: a key, not a password)."""


def psk_weakness(raw: object, key: bytes) -> str:
    """Why the pre-shared key ``key`` is too short to resist offline guessing, or ``""``.

    ``raw`` is the ``[secrets.ike*]`` table as written: a ``secret`` string counts characters
    (at least :data:`MIN_PSK_CHARS`) unless it is ``0x…`` hex or ``0s…`` base64, which count
    decoded bytes (at least :data:`MIN_PSK_BYTES`); a ``secret_file`` counts characters if it
    holds printable text, else bytes. An IKEv2 PSK authenticates the handshake with a PRF
    keyed by it, so whoever records one exchange can test guesses offline as fast as they can
    compute PRFs (Felsch et al., USENIX Security 2018): its length is its only defence.
    """
    given = raw.get("secret") if isinstance(raw, dict) else None
    if isinstance(given, str) and given[:2].lower() in ("0x", "0s"):
        binary = True
    elif isinstance(given, str):
        binary = False
    else:  # from a file: raw bytes
        try:
            binary = not key.decode("utf-8").isprintable()
        except UnicodeDecodeError:
            binary = True
    if binary:
        if len(key) >= MIN_PSK_BYTES:
            return ""
        return f"pre-shared key of {len(key)} bytes is too short: {MIN_PSK_BYTES} random bytes are needed"
    chars = len(key.decode("utf-8", "replace"))
    if chars >= MIN_PSK_CHARS:
        return ""
    return (
        f"pre-shared key of {chars} characters is too short: at least {MIN_PSK_CHARS} characters "
        f"(or {MIN_PSK_BYTES} random bytes: 0x… hex, 0s… base64 or a binary file) are needed"
    )


def validate_each(
    items: dict[object, object],
    model_for: Callable[[str], type[BaseModel] | None],
    context: dict[str, object],
    title: str,
    unknown: str = "",
) -> dict[str, object]:
    """Validate a table of sections with the model ``model_for(name)`` picks, collecting every
    section's errors under its name; a name without a model is reported with ``unknown``."""
    out: dict[str, object] = {}
    details: list[InitErrorDetails] = []
    for name, body in items.items():
        model = model_for(str(name))
        if model is None:
            error = PydanticCustomError("config", "{reason}", {"reason": unknown})
            details.append(InitErrorDetails(type=error, loc=(str(name),), input=body))
            continue
        try:
            out[str(name)] = model.model_validate(body, context=context)
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                ctx = err.get("ctx", {})
                err_type: str | PydanticCustomError = err["type"]
                if err_type == "config":
                    err_type = PydanticCustomError("config", "{reason}", {"reason": str(ctx.get("reason"))})
                details.append(
                    InitErrorDetails(type=err_type, loc=(str(name), *err["loc"]), input=err["input"], ctx=ctx)
                )
    if details:
        raise ValidationError.from_exception_data(title, details)
    return out
