"""The configuration model: frozen pydantic models for the daemon's TOML file (DESIGN.md §6).

Theory of operation: the file reads like strongSwan's swanctl.conf — ``[settings]``,
``[connections.NAME]`` with ``local``/``remote`` authentication rounds and
``children.NAME`` Child SAs, ``[pools.NAME]`` and ``[secrets.NAME]`` — and most keys carry
swanctl's names and defaults. Every model is frozen and refuses unknown keys. Values are
parsed into typed objects while validating (identities, traffic selectors, addresses,
proposals, durations, secrets), so the daemon never re-parses strings. Validation runs in
three layers: field validators check one value; a model validator checks a section's
fields against each other; :class:`Config`'s validator checks references across sections
(a PSK connection needs a matching ``secrets.ike*``, pools named by connections exist).
Errors raised below a field carry their own relative key path, so
:mod:`pyipsec.config.load` can report each one as ``connections.office.children.net.
local_ts[0]: ...``.

Validation context (``model_validate(data, context=...)``): ``base_dir`` (a ``Path``) makes
file references relative to the config file's directory and checks that they exist; without
it paths are kept as written and not checked. ``allow_legacy`` is set by a connection for its
children (its ``legacy_algorithms``).

Lists may also be given as one comma-separated string, as in swanctl.conf
(``local_ts = "10.1.0.0/16, 10.2.0.0/16"``); durations as seconds or with an ``s``/``m``/
``h``/``d`` suffix (``rekey_time = "4h"``); booleans also as ``"yes"``/``"no"``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, TypeAlias

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    PrivateAttr,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

from pyipsec.config.ids import IDENTITY_ANY, Identity
from pyipsec.config.redirect import RedirectSettings
from pyipsec.config.values import (
    AddressSpec,
    Count,
    DirRef,
    FileList,
    FileRef,
    HostPortValue,
    IdList,
    IdValue,
    IPAddr,
    IPAddress,
    IPAddrList,
    KeyPath,
    LocalAddrList,
    NameList,
    NonEmpty,
    Port,
    Proposals,
    RemoteAddrList,
    Seconds,
    TsList,
    TsSpec,
    allow_legacy,
    fail_at,
    from_string,
    parse_duration,
    parse_proposal_list,
    parse_secret,
    pool_range,
    psk_weakness,
    quote,
    raise_issues,
    seconds_float,
    split_list,
    validate_each,
)
from pyipsec.iana.ikev2 import ProtocolId
from pyipsec.ike.proposal import ProposalSpec
from pyipsec.ike.proposal_text import parse_proposals
from pyipsec.store.base import is_dsn, mask_dsn

__all__ = [
    "Auth",
    "AuthKind",
    "Child",
    "CloseAction",
    "Config",
    "Connection",
    "DpdAction",
    "EapSecret",
    "IkeSecret",
    "LogFormat",
    "LogLevel",
    "Mode",
    "Authority",
    "Pool",
    "PrivateKeySecret",
    "Radius",
    "RadiusServer",
    "Revocation",
    "Secret",
    "SendCert",
    "Settings",
    "StartAction",
    "Unique",
    "psk_users",
    "secret_model_for",
]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# ---------------------------------------------------------------------------------------------
# Enumerations


class SendCert(StrEnum):
    ALWAYS = "always"
    NEVER = "never"
    IFASKED = "ifasked"


class Unique(StrEnum):
    NO = "no"
    NEVER = "never"
    KEEP = "keep"
    REPLACE = "replace"


class Mode(StrEnum):
    TUNNEL = "tunnel"
    TRANSPORT = "transport"


class StartAction(StrEnum):
    NONE = "none"
    START = "start"
    TRAP = "trap"


class CloseAction(StrEnum):
    NONE = "none"
    START = "start"
    TRAP = "trap"


class DpdAction(StrEnum):
    CLEAR = "clear"
    RESTART = "restart"
    TRAP = "trap"


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class Revocation(StrEnum):
    """swanctl's ``remote.revocation``: ``strict`` fails unless the certificate is known good,
    ``ifuri`` fails if a CRL/OCSP URI exists but no status could be had, ``relaxed`` fails
    only for a revoked certificate."""

    STRICT = "strict"
    IFURI = "ifuri"
    RELAXED = "relaxed"


class AuthKind(StrEnum):
    """``auth`` values: ``pubkey`` (any certificate key; ``rsa``/``ecdsa`` restrict the key
    type), ``psk``, ``eap`` (client: whatever method the server asks for), ``eap-mschapv2``,
    ``eap-tls`` (RFC 5216/9190) and ``eap-radius`` (gateway: EAP passed through to RADIUS)."""

    PUBKEY = "pubkey"
    RSA = "rsa"
    ECDSA = "ecdsa"
    PSK = "psk"
    EAP = "eap"
    EAP_MSCHAPV2 = "eap-mschapv2"
    EAP_TLS = "eap-tls"
    EAP_RADIUS = "eap-radius"

    @property
    def is_pubkey(self) -> bool:
        return self in (AuthKind.PUBKEY, AuthKind.RSA, AuthKind.ECDSA)

    @property
    def is_eap(self) -> bool:
        return self in (AuthKind.EAP, AuthKind.EAP_MSCHAPV2, AuthKind.EAP_TLS, AuthKind.EAP_RADIUS)


def _auth_kind(value: object) -> AuthKind:
    if isinstance(value, str) and value.strip().lower() in AuthKind._value2member_map_:
        return AuthKind(value.strip().lower())
    known = ", ".join(quote(k.value) for k in AuthKind)
    raise ValueError(f"unknown auth method {quote(str(value))} (known: {known})")


# ---------------------------------------------------------------------------------------------
# Sections


class Settings(_Model):
    """``[settings]``: daemon-wide options, all optional.

    - ``listen`` — addresses to bind (default ``["0.0.0.0", "::"]``);
    - ``port`` / ``port_nat_t`` — IKE UDP ports (500 / 4500, RFC 7296 §2.23, RFC 3948);
    - ``control_socket`` — the control API's UNIX socket (``/run/pyipsec/control.sock``);
    - ``cookie_threshold`` — half-open IKE SAs before COOKIEs are demanded (10, RFC 7296 §2.6);
      ``cookie_threshold_ip`` — the same, counting one source address's half-open SAs (3);
    - ``block_threshold`` — half-open IKE SAs from one source address beyond which its further
      IKE_SA_INITs are dropped, cookie or not (5, strongSwan's ``block_threshold``);
    - ``init_limit_half_open`` — half-open IKE SAs in all beyond which new IKE_SA_INITs are
      dropped (1000; strongSwan's ``init_limit_half_open``, but finite by default);
    - ``half_open_timeout`` — seconds a half-open IKE SA may live (30);
    - ``ike_fragment_budget`` — bytes of IKE fragments held for reassembly across all SAs (4 MiB,
      RFC 7383); beyond it new fragments are dropped;
    - ``retransmit_timeout``, ``retransmit_base``, ``retransmit_tries`` — request ``n`` is
      retransmitted after ``timeout * base**n`` seconds, giving up after ``tries`` retransmits
      (strongSwan's 4.0, 1.8, 5);
    - ``log_level`` — ``debug``, ``info`` (default), ``warning`` or ``error``;
    - ``log_format`` — ``text`` (default) or ``json``: one JSON object per line (``pyipsec.logs``);
    - ``dataplane`` — run the userspace ESP data plane (TUN device, UDP 4500, raw ESP); off, the
      daemon only negotiates SAs (default on);
    - ``tun`` — the TUN device's name (``pyi0``); ``routing_table`` — the table for tunnel routes
      (220, like strongSwan); ``mtu`` — the TUN MTU (default: path MTU minus ESP overhead);
    - ``users`` — the SQLite user and lease store for EAP and virtual IPs
      (``/var/lib/pyipsec/users.db``);
    - ``store`` — a PostgreSQL store shared by several gateways instead (a libpq URI
      ``"postgresql://user:password@host/db"`` or ``"host=… dbname=…"``; ``store.postgres``);
      ``gateway_id`` — this gateway's name on its leases (the host name); ``lease_grace`` —
      seconds after its last heartbeat a gateway's leases become reclaimable (60);
    - ``keepalive_interval`` — NAT keepalives when behind a NAT (20 s, RFC 3948 §4);
    - ``resolv_conf`` — where a client writes the DNS servers it is given (restored on ``down``);
    - ``ike_fragment_size`` — the largest IKE datagram before IKE fragmentation (RFC 7383) is used
      with peers that support it (1280);
    - ``metrics`` — ``"ADDR:PORT"`` (IPv6 as ``"[::1]:9590"``) of a Prometheus endpoint serving
      ``GET /metrics`` (``daemon.metrics``); off by default;
    - ``save_keys`` — a directory (relative to the config file) to write every IKE and ESP SA's
      keys to, for Wireshark (``daemon.savekeys``); off by default, and never in production;
    - ``redirect`` — ``[settings.redirect]``: sending clients to other gateways (RFC 5685,
      ``config.redirect``); off by default.
    """

    listen: Annotated[IPAddrList, NonEmpty] = (ipaddress.IPv4Address(0), ipaddress.IPv6Address(0))
    port: Port = 500
    port_nat_t: Port = 4500
    control_socket: Path = Path("/run/pyipsec/control.sock")
    cookie_threshold: Count = 10
    cookie_threshold_ip: Count = 3
    block_threshold: Annotated[int, Field(strict=True, ge=1)] = 5
    init_limit_half_open: Annotated[int, Field(strict=True, ge=1)] = 1000
    half_open_timeout: Seconds = 30
    ike_fragment_budget: Annotated[int, Field(strict=True, ge=65536)] = 4 * 1024 * 1024
    retransmit_timeout: Annotated[float, BeforeValidator(seconds_float), Field(gt=0)] = 4.0
    retransmit_base: Annotated[float, Field(ge=1.0)] = 1.8
    retransmit_tries: Count = 5
    log_level: LogLevel = LogLevel.INFO
    log_format: LogFormat = LogFormat.TEXT
    dataplane: bool = True
    tun: Annotated[str, Field(min_length=1, max_length=15, pattern=r"^[A-Za-z0-9_.-]+$")] = "pyi0"
    routing_table: Annotated[int, Field(strict=True, ge=1, le=2**31 - 1)] = 220
    mtu: Annotated[int, Field(strict=True, ge=1280, le=65535)] | None = None
    users: Path = Path("/var/lib/pyipsec/users.db")
    store: str | None = None
    gateway_id: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\s]+$")] | None = None
    lease_grace: Annotated[Seconds, Field(ge=10)] = 60
    keepalive_interval: Seconds = 20
    resolv_conf: Path = Path("/etc/resolv.conf")
    ike_fragment_size: Annotated[int, Field(strict=True, ge=200, le=65535)] = 1280
    metrics: HostPortValue | None = None
    redirect: RedirectSettings | None = None
    save_keys: DirRef | None = None

    @field_validator("store", mode="plain")
    @classmethod
    def _store_dsn(cls, value: object) -> str:
        if not isinstance(value, str) or not is_dsn(value):
            shown = mask_dsn(value) if isinstance(value, str) else value
            fail_at((), 'must be a PostgreSQL URI ("postgresql://…") or "key=value" DSN', shown)
        return value

    @field_serializer("store")
    def _store_masked(self, value: str | None) -> str | None:
        """Dumped (``pyipsec check --json``) without the password."""
        return mask_dsn(value) if value is not None else None

    @model_validator(mode="after")
    def _distinct_ports(self) -> Settings:
        if self.port == self.port_nat_t:
            fail_at(("port_nat_t",), "must differ from port", self.port_nat_t)
        return self


class Auth(_Model):
    """``local``/``remote``: one authentication round (swanctl's ``local {}``/``remote {}``).

    - ``auth`` — ``pubkey`` (or ``rsa``/``ecdsa``), ``psk``, ``eap``, ``eap-mschapv2``,
      ``eap-tls``, ``eap-radius`` (required);
    - ``id`` — the IKE identity (:mod:`pyipsec.config.ids` syntax), default ``%any`` (for
      ``local``: the certificate subject or the IP address);
    - ``eap_id`` — the EAP identity, if it differs from ``id``;
    - ``certs`` — certificate files to send (``local``) or to accept (``remote``);
    - ``cacerts`` — trust anchors for the peer's certificate;
    - ``pubkeys`` — raw public key files;
    - ``revocation`` — for the peer's certificates: ``strict``, ``ifuri`` or ``relaxed``
      (default; :class:`Revocation`).

    File names are relative to the config file's directory.
    """

    auth: Annotated[AuthKind, PlainValidator(_auth_kind), PlainSerializer(str)]
    id: IdValue = IDENTITY_ANY
    eap_id: IdValue | None = None
    certs: FileList = ()
    cacerts: FileList = ()
    pubkeys: FileList = ()
    revocation: Revocation = Revocation.RELAXED


class Child(_Model):
    """``[connections.NAME.children.CHILD]``: a Child SA (swanctl's ``children.CHILD {}``).

    - ``local_ts`` / ``remote_ts`` — traffic selectors: a network ``10.1.0.0/16``, an address,
      a range ``10.1.0.1-10.1.0.9`` or ``dynamic`` (default), each optionally followed by
      ``[proto/port]`` as in ``10.0.0.0/8[tcp/443]``, ``[udp/1000-2000]``, ``[icmp/8]``;
    - ``esp_proposals`` — ESP proposals in strongSwan's keywords, or ``"default"``;
    - ``mode`` — ``tunnel`` (default) or ``transport``;
    - ``start_action`` — ``none`` (default), ``start`` (initiate at startup) or ``trap``
      (initiate on matching traffic); ``close_action`` — ``none``, ``start``, ``trap``: what
      to do when the peer closes the Child SA; ``dpd_action`` — ``clear`` (default),
      ``restart``, ``trap``: what to do when DPD declares the peer dead;
    - ``rekey_time`` — seconds before rekeying (3600); ``life_time`` — hard lifetime
      (default ``rekey_time`` + 10%); ``rand_time`` — random jitter subtracted from
      ``rekey_time`` (default ``life_time - rekey_time``);
    - ``rekey_bytes``/``life_bytes``, ``rekey_packets``/``life_packets`` — volume limits, 0
      for none (the ``life_*`` ones default to 10 % above the ``rekey_*`` ones);
    - ``replay_window`` — anti-replay window in packets (1024, RFC 4303 §3.4.3; 0 disables).
    """

    local_ts: TsList = (TsSpec("dynamic", None, None),)
    remote_ts: TsList = (TsSpec("dynamic", None, None),)
    esp_proposals: Proposals = Field(
        default_factory=lambda: parse_proposals("default", protocol=ProtocolId.ESP), validate_default=False
    )
    mode: Mode = Mode.TUNNEL
    start_action: StartAction = StartAction.NONE
    close_action: CloseAction = CloseAction.NONE
    dpd_action: DpdAction = DpdAction.CLEAR
    rekey_time: Seconds = 3600
    life_time: Seconds = 0
    rand_time: Seconds = 0
    rekey_bytes: Count = 0
    life_bytes: Count = 0
    rekey_packets: Count = 0
    life_packets: Count = 0
    replay_window: Annotated[int, Field(strict=True, ge=0, le=2**32 - 1)] = 1024

    @model_validator(mode="before")
    @classmethod
    def _lifetime_defaults(cls, data: object) -> object:
        """The one place of the defaults: hard limits 10 % above the soft ones (strongSwan's),
        ``rand_time`` the gap between them; an explicit 0 stays "no limit"."""
        if not isinstance(data, dict):
            return data
        defaults: dict[str, object] = {}
        for volume in ("bytes", "packets"):
            rekey = data.get(f"rekey_{volume}")
            if f"life_{volume}" not in data and isinstance(rekey, int) and rekey > 0:
                defaults[f"life_{volume}"] = rekey + max(rekey // 10, 1)
        if "life_time" not in data or "rand_time" not in data:
            try:
                rekey_t = parse_duration(data.get("rekey_time", 3600))
                default_life = rekey_t + max(rekey_t // 10, 1) if rekey_t > 0 else 0
                life = parse_duration(data["life_time"]) if "life_time" in data else default_life
            except ValueError:
                return data  # the fields report it
            defaults.update(life_time=life, rand_time=max(life - rekey_t, 0))
        return {**defaults, **data}

    @field_validator("esp_proposals", mode="plain")
    @classmethod
    def _esp_proposals(cls, value: object, info: ValidationInfo) -> tuple[ProposalSpec, ...]:
        return parse_proposal_list(value, ProtocolId.ESP, allow_legacy(info))

    @model_validator(mode="after")
    def _lifetimes(self) -> Child:
        problems: list[tuple[KeyPath, str, object]] = []
        if self.life_time and self.rekey_time and self.life_time <= self.rekey_time:
            problems.append((("life_time",), f"must exceed rekey_time ({self.rekey_time})", self.life_time))
        if self.rekey_time and self.rand_time > self.rekey_time:
            problems.append(
                (("rand_time",), f"must not exceed rekey_time ({self.rekey_time})", self.rand_time)
            )
        for volume in ("bytes", "packets"):
            rekey, life = getattr(self, f"rekey_{volume}"), getattr(self, f"life_{volume}")
            if rekey and life and life <= rekey:
                problems.append(((f"life_{volume}",), f"must exceed rekey_{volume} ({rekey})", life))
        raise_issues(problems, "child")
        return self


class Connection(_Model):
    """``[connections.NAME]``: an IKE SA and its children (swanctl's ``connections.NAME {}``).

    - ``local_addrs`` — local addresses to use or accept: IP addresses or ``%any`` (default);
    - ``remote_addrs`` — the peer: IP addresses, hostnames, subnets or ranges (to accept
      from), or ``%any`` (default: accept any, cannot initiate);
    - ``local_port`` / ``remote_port`` — IKE ports (500);
    - ``proposals`` — IKE proposals in strongSwan's keywords (``aes256gcm16-prfsha256-
      ecp256``), or ``"default"`` (the default);
    - ``legacy_algorithms`` — allow RFC 8247's legacy algorithms (``modp1024``, ``modp1536``,
      ``sha1``, ``3des``) in this connection's IKE and ESP proposals (false);
    - ``insecure_psk`` — accept a pre-shared key shorter than 20 characters (16 bytes as hex
      or base64) for this connection (false): without it such a key is a config error;
    - ``encap`` — force UDP encapsulation of ESP even without a NAT (false);
    - ``mobike`` — offer MOBIKE, RFC 4555 (true); ``fragmentation`` — IKE fragmentation,
      RFC 7383 (true); ``send_certreq`` — send certificate requests (true);
    - ``send_cert`` — ``always``, ``never`` or ``ifasked`` (default);
    - ``dpd_delay`` — seconds of silence before a liveness check, 0 disables (0);
    - ``rekey_time`` — IKE SA rekeying interval (14400); ``reauth_time`` — reauthentication
      interval, 0 disables (0);
    - ``unique`` — uniqueness policy for IKE SAs with the same identities: ``no`` (default),
      ``never``, ``keep``, ``replace``;
    - ``keyingtries`` — initiation attempts, 0 for forever (1);
    - ``pools`` — names of ``[pools.NAME]`` to assign virtual IPs from (responder);
    - ``vips`` — virtual IPs to request (initiator), ``0.0.0.0``/``::`` for any;
    - ``redirect`` — follow gateway redirects, RFC 5685 (true); ``redirect_allow`` — gateways
      besides ``remote_addrs`` an unauthenticated (IKE_SA_INIT) redirect may send us to;
    - ``local`` / ``remote`` — the authentication rounds (:class:`Auth`), both required;
      several rounds (RFC 4739) as in swanctl: ``local-1``, ``local-2``, … (``remote-N`` alike),
      done in the order of their suffixes; the first is ``local`` here, the others
      ``local_more``;
    - ``children`` — the Child SAs (:class:`Child`) by name.
    """

    legacy_algorithms: bool = False
    insecure_psk: bool = False
    local_addrs: LocalAddrList = (AddressSpec("%any"),)
    remote_addrs: RemoteAddrList = (AddressSpec("%any"),)
    local_port: Port = 500
    remote_port: Port = 500
    proposals: Proposals = Field(
        default_factory=lambda: parse_proposals("default", protocol=ProtocolId.IKE), validate_default=False
    )
    encap: bool = False
    mobike: bool = True
    fragmentation: bool = True
    send_certreq: bool = True
    send_cert: SendCert = SendCert.IFASKED
    dpd_delay: Seconds = 0
    rekey_time: Seconds = 14400
    reauth_time: Seconds = 0
    unique: Unique = Unique.NO
    keyingtries: Count = 1
    pools: NameList = ()
    vips: IPAddrList = ()
    redirect: bool = True
    redirect_allow: tuple[Annotated[str, Field(min_length=1, max_length=255)], ...] = ()
    local: Auth
    remote: Auth
    local_more: tuple[Auth, ...] = ()
    remote_more: tuple[Auth, ...] = ()
    children: Mapping[str, Child] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _rounds(cls, data: object) -> object:
        """swanctl's ``local-1``/``local-2``/… (and ``remote-N``): rounds in suffix order."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for side in ("local", "remote"):
            keys = sorted(k for k in data if isinstance(k, str) and (k == side or k.startswith(f"{side}-")))
            if keys and keys != [side]:
                if f"{side}_more" in data:
                    fail_at((f"{side}_more",), f"use {side}-1, {side}-2, … for several rounds", None)
                rounds = [data.pop(k) for k in keys]
                data[side], data[f"{side}_more"] = rounds[0], tuple(rounds[1:])
        return data

    @property
    def local_rounds(self) -> tuple[Auth, ...]:
        return (self.local, *self.local_more)

    @property
    def remote_rounds(self) -> tuple[Auth, ...]:
        return (self.remote, *self.remote_more)

    @field_validator("proposals", mode="plain")
    @classmethod
    def _ike_proposals(cls, value: object, info: ValidationInfo) -> tuple[ProposalSpec, ...]:
        return parse_proposal_list(value, ProtocolId.IKE, info.data.get("legacy_algorithms") is True)

    @field_validator("children", mode="wrap")
    @classmethod
    def _children(cls, value: object, handler: Callable[[object], object], info: ValidationInfo) -> object:
        """Validate each child with ``allow_legacy`` from this connection in the context."""
        if not isinstance(value, dict):
            return handler(value)
        context = dict(info.context) if isinstance(info.context, dict) else {}
        context["allow_legacy"] = info.data.get("legacy_algorithms") is True
        return validate_each(value, lambda _name: Child, context, "children")

    @model_validator(mode="after")
    def _consistency(self) -> Connection:
        problems: list[tuple[KeyPath, str, object]] = []
        for index, ours in enumerate(self.local_rounds):
            where = "local" if index == 0 else f"local_more.{index - 1}"
            if (ours.auth.is_pubkey or ours.auth == AuthKind.EAP_TLS) and not ours.certs and not ours.pubkeys:
                problems.append(
                    ((where, "certs"), f"auth = {quote(ours.auth)} needs a certificate to send", [])
                )
            if ours.auth == AuthKind.EAP_RADIUS:
                problems.append(
                    (
                        (where, "auth"),
                        "eap-radius is for a gateway's remote round (its clients' EAP)",
                        "eap-radius",
                    )
                )
        if (
            self.local.auth.is_eap
            and self.remote.auth.is_eap
            and not (
                self.local.auth == AuthKind.EAP_TLS
                and self.remote.auth in (AuthKind.EAP_TLS, AuthKind.EAP_RADIUS)
            )
        ):
            problems.append(
                (
                    ("remote", "auth"),
                    "both ends cannot authenticate with EAP, except EAP-only authentication with eap-tls "
                    "(RFC 5998)",
                    self.remote.auth,
                )
            )
        can_initiate = any(a.address is not None or a.hostname is not None for a in self.remote_addrs)
        for name, child in self.children.items():
            actions = (
                ("start_action", child.start_action, child.start_action != StartAction.NONE),
                ("close_action", child.close_action, child.close_action != CloseAction.NONE),
                ("dpd_action", child.dpd_action, child.dpd_action != DpdAction.CLEAR),
            )
            for key, action, initiates in actions:
                if initiates and not can_initiate:
                    problems.append(
                        (
                            ("children", name, key),
                            f"{key} = {quote(action)} needs a remote address to initiate to "
                            "(remote_addrs has no single address or hostname)",
                            action.value,
                        )
                    )
        raise_issues(problems, "connection")
        return self


class Pool(_Model):
    """``[pools.NAME]``: virtual IPs handed out to clients (RFC 7296 §3.15).

    - ``addrs`` — a subnet (``10.3.0.0/24``; its network and broadcast addresses are not
      handed out for IPv4 prefixes up to /30) or a range (``10.3.0.10-10.3.0.200``) (required);
    - ``dns`` — DNS servers to announce;
    - ``domains`` — DNS search domains to announce (INTERNAL_DNS_DOMAIN, RFC 8598).
    """

    addrs: Annotated[
        tuple[IPAddress, IPAddress],
        PlainValidator(from_string(pool_range)),
        PlainSerializer(lambda r: f"{r[0]}-{r[1]}"),
    ]
    dns: IPAddrList = ()
    domains: NameList = ()

    @property
    def size(self) -> int:
        return int(self.addrs[1]) - int(self.addrs[0]) + 1


SecretBytes = Annotated[bytes, PlainValidator(parse_secret)]


class _SharedSecret(_Model):
    id: IdList = ()
    secret: SecretBytes = Field(repr=False, exclude=True)
    secret_file: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _read_secret_file(cls, data: object, info: ValidationInfo) -> object:
        """Load ``secret_file`` into ``secret`` (one trailing newline is dropped)."""
        if not isinstance(data, dict) or "secret_file" not in data:
            return data
        if "secret" in data:
            fail_at(("secret_file",), "give either secret or secret_file, not both", data["secret_file"])
        raw = data["secret_file"]
        if not isinstance(raw, str):
            return data  # the field reports the type
        path = Path(raw).expanduser()
        base = info.context.get("base_dir") if isinstance(info.context, dict) else None
        if isinstance(base, Path) and not path.is_absolute():
            path = base / path
        try:
            content = path.read_bytes()
        except OSError as exc:
            fail_at(("secret_file",), f"cannot read {quote(str(path))}: {exc.strerror}", raw)
        content = content.removesuffix(b"\n").removesuffix(b"\r")
        if not content:
            fail_at(("secret_file",), f"{quote(str(path))} is empty", raw)
        return {**data, "secret_file": path, "secret": content}


class IkeSecret(_SharedSecret):
    """``[secrets.ike*]``: an IKE pre-shared key (swanctl's ``secrets.ike<suffix>``).

    - ``id`` — identities this key is for (a string or an array); empty means any;
    - ``secret`` — the key: a string, ``"0x..."`` hex or ``"0s..."`` base64; or
    - ``secret_file`` — a file holding the raw key (it should be mode 0600).

    A key shorter than 20 characters (16 bytes when given as hex, base64 or a binary file) is
    refused unless every PSK connection it serves sets ``insecure_psk = true``
    (:func:`~pyipsec.config.values.psk_weakness`, checked by :class:`Config`).
    """

    _weakness: str = PrivateAttr(default="")

    @model_validator(mode="wrap")
    @classmethod
    def _strength(cls, data: object, handler: Callable[[object], IkeSecret]) -> IkeSecret:
        """Note whether the key is too short, which needs the table as written (hex or text)."""
        secret = handler(data)
        secret._weakness = psk_weakness(data, secret.secret)
        return secret

    @property
    def weakness(self) -> str:
        """Why this key is too short (``""`` if it is long enough)."""
        return self._weakness


class EapSecret(_SharedSecret):
    """``[secrets.eap*]``: an EAP password (swanctl's ``secrets.eap<suffix>``); keys as for
    :class:`IkeSecret`, ``id`` naming the EAP user(s)."""


class PrivateKeySecret(_Model):
    """``[secrets.private*]``: a private key for ``pubkey`` authentication.

    - ``file`` — the PEM or DER key file (required);
    - ``secret`` — its passphrase, if encrypted.
    """

    file: FileRef
    secret: SecretBytes | None = Field(default=None, repr=False, exclude=True)


Secret: TypeAlias = IkeSecret | EapSecret | PrivateKeySecret


class RadiusServer(_Model):
    """``[radius.servers.NAME]``: one RADIUS server (strongSwan's ``eap-radius.servers``).

    - ``address`` — its IP address (required); ``auth_port`` (1812), ``acct_port`` (1813);
    - ``secret`` — the shared secret (required; a string, ``0x…`` hex or ``0s…`` base64).
    """

    address: IPAddr
    auth_port: Port = 1812
    acct_port: Port = 1813
    secret: SecretBytes = Field(repr=False, exclude=True)


class Radius(_Model):
    """``[radius]``: the AAA servers behind ``auth = "eap-radius"`` (RFC 2865, RFC 3579).

    - ``servers`` — :class:`RadiusServer` by name, tried in this order (failover);
    - ``timeout`` — seconds before a request is sent again (2); ``tries`` — sends per server (3);
    - ``nas_identifier`` — our NAS-Identifier (the ``gateway_id`` if set, else ``pyipsec``);
    - ``accounting`` — send RADIUS accounting (RFC 2866) for each IKE SA (false);
    - ``interim_interval`` — seconds between Interim-Updates, 0 for none (0).
    """

    servers: Annotated[Mapping[str, RadiusServer], Field(min_length=1)]
    timeout: Annotated[float, BeforeValidator(seconds_float), Field(gt=0)] = 2.0
    tries: Annotated[int, Field(strict=True, ge=1, le=10)] = 3
    nas_identifier: Annotated[str, Field(min_length=1, max_length=253)] = "pyipsec"
    accounting: bool = False
    interim_interval: Seconds = 0


class Authority(_Model):
    """``[authorities.NAME]``: where to learn about revoked certificates (swanctl's
    ``authorities``).

    - ``cacert`` — the CA certificate file (required);
    - ``crl_uris`` — CRL files (paths or ``file://`` URIs) to check its certificates against;
      CRL distribution points in certificates are fetched over HTTP on their own;
    - ``ocsp_uris`` — OCSP responders (``http://…``) to ask about its certificates.
    """

    cacert: FileRef
    crl_uris: FileList = ()
    ocsp_uris: NameList = ()

    @field_validator("crl_uris", mode="before")
    @classmethod
    def _crl_files(cls, value: object) -> object:
        """CRL files, relative to the config file like every file; ``file://`` allowed."""
        items = split_list(value)
        if not isinstance(items, list | tuple):
            return items
        problems: list[tuple[KeyPath, str, object]] = []
        for index, uri in enumerate(items):
            if isinstance(uri, str) and "://" in uri and not uri.startswith("file://"):
                problems.append(
                    (
                        (index,),
                        "give CRLs as files (HTTP CRLs come from the certificates' distribution points)",
                        uri,
                    )
                )
        raise_issues(problems, "authority")
        return [u.removeprefix("file://") if isinstance(u, str) else u for u in items]

    @model_validator(mode="after")
    def _uris(self) -> Authority:
        problems: list[tuple[KeyPath, str, object]] = []
        for index, uri in enumerate(self.ocsp_uris):
            if not uri.startswith(("http://", "https://")):
                problems.append(
                    (("ocsp_uris", index), "an OCSP responder is an http:// or https:// URI", uri)
                )
        raise_issues(problems, "authority")
        return self


_SECRET_KINDS: tuple[tuple[str, type[IkeSecret] | type[EapSecret] | type[PrivateKeySecret]], ...] = (
    ("ike", IkeSecret),
    ("eap", EapSecret),
    ("private", PrivateKeySecret),
)


def secret_model_for(name: str) -> type[IkeSecret] | type[EapSecret] | type[PrivateKeySecret] | None:
    """The model for ``[secrets.NAME]``, chosen by the name's prefix as swanctl does."""
    for prefix, model in _SECRET_KINDS:
        if name.lower().startswith(prefix):
            return model
    return None


class Config(_Model):
    """The whole file: ``[settings]``, ``[connections.*]``, ``[pools.*]``, ``[secrets.*]``.

    Cross-checks: a connection authenticating with ``psk`` needs an ``ike*`` secret whose
    ``id`` list is empty or matches its local or remote identity; a too short ``ike*`` secret
    needs ``insecure_psk = true`` on every PSK connection it serves (and at least one); one
    whose local round is EAP needs an ``eap*`` secret for its EAP identity; every pool a
    connection names exists.
    """

    settings: Settings = Field(default_factory=Settings)
    connections: Mapping[str, Connection] = Field(default_factory=dict)
    pools: Mapping[str, Pool] = Field(default_factory=dict)
    secrets: Mapping[str, Secret] = Field(default_factory=dict)
    radius: Radius | None = None
    authorities: Mapping[str, Authority] = Field(default_factory=dict)

    @field_validator("secrets", mode="wrap")
    @classmethod
    def _secrets(cls, value: object, handler: Callable[[object], object], info: ValidationInfo) -> object:
        if not isinstance(value, dict):
            return handler(value)
        context = dict(info.context) if isinstance(info.context, dict) else {}
        return validate_each(
            value,
            secret_model_for,
            context,
            "secrets",
            "unknown secret type: the name must start with ike, eap or private",
        )

    @model_validator(mode="after")
    def _references(self) -> Config:
        problems: list[tuple[KeyPath, str, object]] = []
        ike = {n: s for n, s in self.secrets.items() if isinstance(s, IkeSecret)}
        eap = {n: s for n, s in self.secrets.items() if isinstance(s, EapSecret)}
        for name, conn in self.connections.items():
            rounds = [r for r in ("local", "remote") if getattr(conn, r).auth == AuthKind.PSK]
            if rounds and not any(_covers(s, conn.local.id, conn.remote.id) for s in ike.values()):
                problems.append(
                    (
                        ("connections", name, rounds[0], "auth"),
                        f'auth = "psk" but no [secrets.ike*] entry has an id matching local id '
                        f"{quote(str(conn.local.id))} or remote id {quote(str(conn.remote.id))}"
                        + (f" (have: {', '.join('secrets.' + n for n in ike)})" if ike else ""),
                        "psk",
                    )
                )
            for index, ours in enumerate(conn.local_rounds):
                needs_password = ours.auth == AuthKind.EAP_MSCHAPV2 or (
                    ours.auth == AuthKind.EAP and not ours.certs
                )
                eap_id = ours.eap_id or ours.id
                if needs_password and not any(_covers(s, eap_id, eap_id) for s in eap.values()):
                    problems.append(
                        (
                            (
                                "connections",
                                name,
                                "local" if index == 0 else f"local_more.{index - 1}",
                                "auth",
                            ),
                            f"auth = {quote(ours.auth)} but no [secrets.eap*] entry has an id matching "
                            f"{quote(str(eap_id))} (eap_id or id)",
                            ours.auth.value,
                        )
                    )
            if self.radius is None and any(r.auth == AuthKind.EAP_RADIUS for r in conn.remote_rounds):
                problems.append(
                    (
                        ("connections", name, "remote", "auth"),
                        'auth = "eap-radius" needs RADIUS servers: add [radius.servers.NAME]',
                        "eap-radius",
                    )
                )
            for index, pool in enumerate(conn.pools):
                if pool not in self.pools:
                    problems.append(
                        (
                            ("connections", name, "pools", index),
                            f"no pool named {quote(pool)} in [pools]",
                            pool,
                        )
                    )
        problems += self._short_psks(ike)
        raise_issues(problems, "config")
        return self

    def _short_psks(self, ike: Mapping[str, IkeSecret]) -> list[tuple[KeyPath, str, object]]:
        """A short PSK is an error unless each PSK connection whose ids it covers opts in."""
        problems: list[tuple[KeyPath, str, object]] = []
        for name, secret in ike.items():
            if not secret.weakness:
                continue
            users = psk_users(self, secret)
            refusing = [n for n in users if not self.connections[n].insecure_psk]
            if users and not refusing:
                continue  # every connection using it opted in
            names = ", ".join(f"connections.{n}" for n in (refusing or users))
            where = f"on {names}" if names else "on the connection that uses it"
            problems.append(
                (
                    ("secrets", name, "secret_file" if secret.secret_file else "secret"),
                    f"{secret.weakness}; use a long random key, or set insecure_psk = true {where} "
                    "to accept it",
                    "(hidden)",
                )
            )
        return problems


def psk_users(config: Config, secret: IkeSecret) -> list[str]:
    """The PSK connections whose local or remote id ``secret`` covers (by name)."""
    return [
        name
        for name, conn in config.connections.items()
        if any(r.auth == AuthKind.PSK for r in (*conn.local_rounds, *conn.remote_rounds))
        and _covers(secret, conn.local.id, conn.remote.id)
    ]


def _loose_match(a: Identity, b: Identity) -> bool:
    return a.is_any or b.is_any or a.matches(b) or b.matches(a)


def _covers(secret: _SharedSecret, local: Identity, remote: Identity) -> bool:
    ids: tuple[Identity, ...] = secret.id
    return not ids or any(_loose_match(i, local) or _loose_match(i, remote) for i in ids)
