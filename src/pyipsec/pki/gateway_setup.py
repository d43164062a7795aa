"""What ``pyipsec gateway init`` writes: the layout of a gateway directory and its configuration.

Theory of operation
-------------------
A :class:`GatewayPlan` is the validated input of ``gateway init`` — the gateway's name (the
DNS name or address clients dial, which goes into its certificate and is its IKE identity),
the directory, the IPv4 pool and an IPv6 pool (by default a random RFC 4193 unique local /112),
DNS servers, the first user, how users log in (EAP-MSCHAPv2 against the user store, or EAP-TLS
with certificates of the new CA), and optionally the addresses to listen on and the networks
the clients reach (default: everything, ``0.0.0.0/0`` and ``::/0``). Every bad value raises
:class:`~pyipsec.pki.errors.PkiError` naming the option and the reason.

:class:`GatewayLayout` says where each file goes below the directory::

    DIR/ca/ca-cert.pem, ca-key.pem              the CA (key mode 0600, directory 0700)
    DIR/gateway/NAME-cert.pem, NAME-key.pem     the gateway certificate (key 0600)
    DIR/pyipsec.toml                            the configuration
    DIR/users.db                                the user store (EAP-MSCHAPv2; mode 0600)
    DIR/profiles/USER.{mobileconfig,sswan,ps1,toml}  the first user's client profiles

:func:`render_config` writes the configuration as TOML text: one connection ``rw`` shaped like
``examples/gateway-cert.toml`` — the gateway signs with its certificate and sends it always
(Apple clients send no CERTREQ unless told the issuer), ``proposals``/``esp_proposals``
``"default"`` (AES-GCM and AES-CBC/SHA-2 with ECP and MODP-2048+ groups: what the profiles of
:mod:`pyipsec.pki.profiles` ask for, and what iOS/macOS, Windows with its profile script and the
strongSwan app offer), clients authenticated by EAP, virtual IPs from the two pools, DPD, and
``unique = "replace"`` so a reconnecting device replaces its stale SA. File names in it are
absolute, so the file stays valid wherever it is copied. Nothing here touches the file system.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pyipsec.crypto.rand import OS_RANDOM, RandomSource
from pyipsec.pki.errors import PkiError
from pyipsec.pki.files import CA_CERT_FILE, CA_KEY_FILE, issued_paths
from pyipsec.pki.names import GatewayName, file_stem, parse_client_name, parse_gateway_name
from pyipsec.pki.profiles import ClientAuth, ProfileFormat, validate_username

__all__ = [
    "CONNECTION",
    "DEFAULT_POOL",
    "GatewayLayout",
    "GatewayPlan",
    "IPAddress",
    "parse_dns",
    "parse_listen",
    "parse_networks",
    "parse_pool",
    "parse_pool6",
    "random_ula_pool",
    "render_config",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

CONNECTION: Final = "rw"
"""The name of the generated connection (and of its child)."""
POOL4: Final = "rw"
POOL6: Final = "rw6"
DEFAULT_POOL: Final = "10.10.0.0/24"
POOL6_PREFIX: Final = 112
"""The default IPv6 pool is a /112 (65,536 addresses) of a random unique local /48."""
_MAX_POOL4_PREFIX: Final = 30
_MAX_POOL6_PREFIX: Final = 126


def _network(text: str, option: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        raise PkiError(f"bad {option} {text!r}: {exc}") from None


def parse_pool(text: str) -> ipaddress.IPv4Network:
    """The IPv4 pool (``--pool``): an IPv4 network of at least four addresses."""
    net = _network(text, "--pool")
    if not isinstance(net, ipaddress.IPv4Network):
        raise PkiError(f"bad --pool {text!r}: not an IPv4 network (give the IPv6 pool with --pool6)")
    if net.prefixlen > _MAX_POOL4_PREFIX:
        raise PkiError(
            f"bad --pool {text!r}: a /{net.prefixlen} leaves no addresses for clients (at most /30)"
        )
    return net


def parse_pool6(text: str) -> ipaddress.IPv6Network:
    """The IPv6 pool (``--pool6``): an IPv6 network."""
    net = _network(text, "--pool6")
    if not isinstance(net, ipaddress.IPv6Network):
        raise PkiError(f"bad --pool6 {text!r}: not an IPv6 network")
    if net.prefixlen > _MAX_POOL6_PREFIX:
        raise PkiError(f"bad --pool6 {text!r}: a /{net.prefixlen} leaves no addresses for clients")
    return net


def random_ula_pool(rng: RandomSource = OS_RANDOM) -> ipaddress.IPv6Network:
    """A /112 at the start of a unique local /48 with a random 40-bit Global ID (RFC 4193 §3.2)."""
    global_id = int.from_bytes(rng.random_bytes(5), "big")
    prefix = (0xFD << 120) | (global_id << 80)
    return ipaddress.IPv6Network((prefix, POOL6_PREFIX))


def _addresses(values: Sequence[str], option: str) -> tuple[IPAddress, ...]:
    out: list[IPAddress] = []
    for text in values:
        try:
            out.append(ipaddress.ip_address(text.strip()))
        except ValueError:
            raise PkiError(f"bad {option} {text!r}: not an IP address") from None
    return tuple(dict.fromkeys(out))


def parse_dns(values: Sequence[str]) -> tuple[IPAddress, ...]:
    """DNS servers handed to clients (``--dns``)."""
    return _addresses(values, "--dns")


def parse_listen(values: Sequence[str]) -> tuple[IPAddress, ...]:
    """Addresses the gateway listens on (``--listen``)."""
    return _addresses(values, "--listen")


def parse_networks(values: Sequence[str]) -> tuple[IPNetwork, ...]:
    """Networks the clients reach through the tunnel (``--lan``)."""
    return tuple(dict.fromkeys(_network(v, "--lan") for v in values))


@dataclass(frozen=True, slots=True)
class GatewayLayout:
    """Where ``gateway init`` puts each file below ``directory`` (absolute)."""

    directory: Path
    name: GatewayName
    user: str

    @property
    def config(self) -> Path:
        return self.directory / "pyipsec.toml"

    @property
    def ca_dir(self) -> Path:
        return self.directory / "ca"

    @property
    def ca_cert(self) -> Path:
        return self.ca_dir / CA_CERT_FILE

    @property
    def ca_key(self) -> Path:
        return self.ca_dir / CA_KEY_FILE

    @property
    def gateway_dir(self) -> Path:
        return self.directory / "gateway"

    @property
    def gateway_stem(self) -> str:
        return file_stem(self.name.text)

    @property
    def gateway_cert(self) -> Path:
        return issued_paths(self.gateway_dir, self.gateway_stem)[0]

    @property
    def gateway_key(self) -> Path:
        return issued_paths(self.gateway_dir, self.gateway_stem)[1]

    @property
    def users_db(self) -> Path:
        return self.directory / "users.db"

    @property
    def profiles_dir(self) -> Path:
        return self.directory / "profiles"

    def profile(self, fmt: ProfileFormat) -> Path:
        return self.profiles_dir / f"{file_stem(self.user)}{fmt.suffix}"

    @property
    def eap_secret(self) -> Path:
        """The first user's password for the pyipsec profile (mode 0600)."""
        return self.profiles_dir / f"{file_stem(self.user)}.eap-secret"

    @property
    def client_cert(self) -> Path:
        return issued_paths(self.profiles_dir, file_stem(self.user))[0]

    @property
    def client_key(self) -> Path:
        return issued_paths(self.profiles_dir, file_stem(self.user))[1]


@dataclass(frozen=True, slots=True)
class GatewayPlan:
    """The validated input of ``gateway init``."""

    name: GatewayName
    directory: Path
    pool: ipaddress.IPv4Network
    pool6: ipaddress.IPv6Network | None
    dns: tuple[IPAddress, ...] = ()
    user: str = "user1"
    auth: ClientAuth = ClientAuth.EAP_MSCHAPV2
    listen: tuple[IPAddress, ...] = ()
    lan: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(
        cls,
        *,
        name: str,
        directory: Path,
        pool: str = DEFAULT_POOL,
        pool6: str | None = None,
        no_pool6: bool = False,
        dns: Sequence[str] = (),
        user: str = "user1",
        auth: str = ClientAuth.EAP_MSCHAPV2.value,
        listen: Sequence[str] = (),
        lan: Sequence[str] = (),
        rng: RandomSource = OS_RANDOM,
    ) -> GatewayPlan:
        """Validate the command's options; :class:`PkiError` names the first bad one."""
        try:
            gateway = parse_gateway_name(name)
        except PkiError as exc:
            raise PkiError(f"--name: {exc}") from None
        try:
            kind = ClientAuth(auth)
        except ValueError:
            kind = None
        if kind not in (ClientAuth.EAP_MSCHAPV2, ClientAuth.EAP_TLS):
            raise PkiError(f"bad --auth {auth!r}: choose eap-mschapv2 or eap-tls")
        try:
            validate_username(user)
            if kind == ClientAuth.EAP_TLS:
                parse_client_name(user)  # the name in the user's certificate
        except PkiError as exc:  # ProfileError included
            raise PkiError(f"--user: {exc}") from None
        if no_pool6 and pool6 is not None:
            raise PkiError("--pool6 and --no-pool6 contradict each other")
        v6 = None if no_pool6 else (parse_pool6(pool6) if pool6 is not None else random_ula_pool(rng))
        return cls(
            name=gateway,
            directory=directory.absolute(),
            pool=parse_pool(pool),
            pool6=v6,
            dns=parse_dns(dns),
            user=user,
            auth=kind,
            listen=parse_listen(listen),
            lan=parse_networks(lan),
        )

    @property
    def layout(self) -> GatewayLayout:
        return GatewayLayout(self.directory, self.name, self.user)

    @property
    def local_ts(self) -> tuple[str, ...]:
        """What the clients reach: ``--lan``, else everything of each pool's family."""
        if self.lan:
            return tuple(str(n) for n in self.lan)
        return ("0.0.0.0/0", "::/0") if self.pool6 is not None else ("0.0.0.0/0",)


def _s(value: object) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(str(value), ensure_ascii=True)


def _list(values: Sequence[object]) -> str:
    return "[" + ", ".join(_s(str(v)) for v in values) + "]"


def render_config(plan: GatewayPlan) -> str:
    """The gateway's ``pyipsec.toml`` for ``plan`` (see the module docstring)."""
    lay = plan.layout
    conn = f"connections.{CONNECTION}"
    pools = [POOL4] + ([POOL6] if plan.pool6 is not None else [])
    lines = [
        f"# pyipsec gateway {plan.name.text}, written by `pyipsec gateway init`.",
        f"# Check it with `pyipsec check {lay.config}`; add users with",
        f"# `pyipsec user add NAME --db {lay.users_db}`, export their profiles with `pyipsec user export`.",
        "",
        "[settings]",
        f"users = {_s(lay.users_db)}              # EAP accounts and the leases of the pools",
    ]
    if plan.listen:
        lines.append(f"listen = {_list(plan.listen)}")
    lines += [
        "",
        f"[{conn}]",
        'proposals = ["default"]          # AES-GCM, AES-CBC/SHA-2, ECP and MODP-2048+: native clients',
        'send_cert = "always"             # Apple clients send no certificate request',
        f"pools = {_list(pools)}",
        'dpd_delay = "60s"',
        'unique = "replace"               # a device that reconnects replaces its old SA',
        "",
        f"  [{conn}.local]",
        '  auth = "pubkey"',
        f"  id = {_s(plan.name.text)}          # in the certificate's subjectAltName",
        f"  certs = {_list([lay.gateway_cert])}",
        "",
        f"  [{conn}.remote]",
    ]
    if plan.auth == ClientAuth.EAP_TLS:
        lines += [
            '  auth = "eap-tls"',
            '  eap_id = "%any"                # the identity is in the client certificate',
            f"  cacerts = {_list([lay.ca_cert])}",
        ]
    else:
        lines += ['  auth = "eap-mschapv2"           # users in the store (settings.users)', '  id = "%any"']
    lines += [
        "",
        f"  [{conn}.children.{CONNECTION}]",
        f"  local_ts = {_list(plan.local_ts)}",
        '  remote_ts = ["dynamic"]        # the client\'s virtual IP',
        '  esp_proposals = ["default"]',
        '  dpd_action = "clear"',
        "",
        f"[pools.{POOL4}]",
        f"addrs = {_s(plan.pool)}",
    ]
    if plan.dns:
        lines.append(f"dns = {_list(plan.dns)}")
    if plan.pool6 is not None:
        lines += ["", f"[pools.{POOL6}]", f"addrs = {_s(plan.pool6)}"]
    lines += ["", "[secrets.private-gateway]", f"file = {_s(lay.gateway_key)}"]
    return "\n".join(lines) + "\n"
