"""From the validated TOML model (``config.model``) to a running engine.

Reads the files the configuration names (certificates, private keys), resolves remote
host names, and turns config identities and traffic selectors into the engine's plain
dataclasses (:func:`build_engine_config`). Every problem is a ``ConfigError`` naming the
connection and key. :func:`build_engine` then makes the engine; with pools or EAP users it
opens the SQLite store, whose leases (:class:`StorePools`) survive daemon restarts; the
EAP-MSCHAPv2 server checks the users of ``[secrets.eap*]`` and of the store
(:mod:`pyipsec.daemon.eapusers`). With ``[settings] store`` (PostgreSQL, shared by several
gateways) the store is a :class:`~pyipsec.daemon.sharedstore.SharedStore` instead: the engine
asks for leases and users by lookups, answered on a worker thread, so the event loop never
waits for the database. Its schema is checked at the start (a missing or foreign schema
refuses the start, naming ``settings.store``); a server that is down is not: the gateway
starts, and new clients fail with the reason until it is back.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from pyipsec.childsa import EspMode
from pyipsec.config.ids import Identity as ConfigIdentity
from pyipsec.config.model import (
    Auth,
    AuthKind,
    Child,
    Config,
    Connection,
    EapSecret,
    IkeSecret,
    PrivateKeySecret,
)
from pyipsec.config.values import AddressSpec, TsSpec
from pyipsec.crypto.rand import OS_RANDOM, RandomSource
from pyipsec.crypto.x509 import load_certificate, load_private_key
from pyipsec.daemon.eapusers import EapUsers, configured_users, eap_user_name
from pyipsec.daemon.sharedstore import SharedStore
from pyipsec.errors import ConfigError, PyIpsecError
from pyipsec.ike.config import (
    AuthClass,
    AuthConfig,
    ChildConfig,
    ConnectionConfig,
    EngineConfig,
    Identity,
    PoolConfig,
    SendCert,
)
from pyipsec.ike.credentials import MemoryCredentials, SharedSecret
from pyipsec.ike.eap.mschapv2 import MsChapV2Server
from pyipsec.ike.engine import IkeEngine
from pyipsec.ike.pools import AddressPools, MemoryPools
from pyipsec.ike.retransmit import RetransmitPolicy
from pyipsec.radius import RadiusClient, RadiusServer, RadiusSettings
from pyipsec.revocation import RevocationChecker
from pyipsec.store.base import StoreUnavailable
from pyipsec.store.factory import postgres
from pyipsec.store.sqlite import SqliteStore, StoreError
from pyipsec.wire.payloads.ts import TrafficSelector

__all__ = [
    "StorePools",
    "build_engine",
    "build_engine_config",
    "build_radius",
    "build_revocation",
    "eap_server_factory",
    "needs_store",
    "open_shared_store",
]

_log = logging.getLogger("pyipsec.daemon")


def _identity(ident: ConfigIdentity, where: str) -> Identity:
    if ident.is_any:
        return Identity.any()
    if ident.has_wildcards:
        raise ConfigError(f"wildcard identity {ident} is not supported yet (use %any)", key=where)
    return Identity(ident.id_type, ident.data)


_AUTH = {
    AuthKind.PSK: AuthClass.PSK,
    AuthKind.PUBKEY: AuthClass.PUBKEY,
    AuthKind.RSA: AuthClass.PUBKEY,
    AuthKind.ECDSA: AuthClass.PUBKEY,
    AuthKind.EAP_MSCHAPV2: AuthClass.EAP_MSCHAPV2,
    AuthKind.EAP: AuthClass.EAP,
    AuthKind.EAP_TLS: AuthClass.EAP_TLS,
    AuthKind.EAP_RADIUS: AuthClass.EAP_RADIUS,
}


def _der(path: Path, where: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", key=where) from None
    try:
        cert = load_certificate(data, source=str(path))
    except PyIpsecError as exc:  # a garbage file: say which key names it
        raise ConfigError(str(exc), key=where) from None
    return cert.public_bytes(serialization.Encoding.DER)


def _ts(specs: tuple[TsSpec, ...]) -> tuple[TrafficSelector, ...]:
    out: list[TrafficSelector] = []
    for s in specs:
        if s.dynamic or s.first is None or s.last is None:
            continue
        out.append(
            TrafficSelector.from_range(s.first, s.last, protocol=s.protocol, ports=(s.port_start, s.port_end))
        )
    return tuple(out)


def _addrs(specs: tuple[AddressSpec, ...], where: str, *, resolve: bool = True) -> tuple[str, ...]:
    out: list[str] = []
    for a in specs:
        if a.is_any:
            out.append("%any")
        elif a.address is not None:
            out.append(str(a.address))
        elif a.hostname is not None and not resolve:
            out.append(a.hostname)
        elif a.hostname is not None:
            try:
                infos = socket.getaddrinfo(a.hostname, None, type=socket.SOCK_DGRAM)
            except OSError as exc:
                raise ConfigError(f"cannot resolve {a.hostname}: {exc}", key=where) from None
            out.append(str(infos[0][4][0]))
        else:
            raise ConfigError(f"address ranges ({a}) are not supported here yet", key=where)
    return tuple(out)


def _child(name: str, child: Child) -> ChildConfig:
    return ChildConfig(
        name=name,
        local_ts=_ts(child.local_ts),
        remote_ts=_ts(child.remote_ts),
        esp_proposals=child.esp_proposals,
        mode=EspMode(child.mode.value),
        rekey_time=float(child.rekey_time),
        life_time=float(child.life_time),  # the model holds the defaults (Child._lifetime_defaults)
        rand_time=float(child.rand_time),
        replay_window=child.replay_window,
        rekey_bytes=int(child.rekey_bytes),
        life_bytes=int(child.life_bytes),
        rekey_packets=int(child.rekey_packets),
        life_packets=int(child.life_packets),
    )


def _auth(a: Auth, where: str) -> AuthConfig:
    return AuthConfig(
        _AUTH[a.auth],
        _identity(a.id, f"{where}.id"),
        certs=tuple(_der(p, f"{where}.certs") for p in a.certs),
        cacerts=tuple(_der(p, f"{where}.cacerts") for p in a.cacerts),
        eap_identity=eap_user_name(a.eap_id) if a.eap_id is not None else "",
        revocation=a.revocation.value,
    )


def _connection(name: str, c: Connection, *, resolve: bool = True) -> ConnectionConfig:
    where = f"connections.{name}"
    return ConnectionConfig(
        name=name,
        local_addrs=_addrs(c.local_addrs, f"{where}.local_addrs", resolve=resolve),
        remote_addrs=_addrs(c.remote_addrs, f"{where}.remote_addrs", resolve=resolve),
        proposals=c.proposals,
        local=_auth(c.local, f"{where}.local"),
        remote=_auth(c.remote, f"{where}.remote"),
        local_more=tuple(_auth(a, f"{where}.local-{n}") for n, a in enumerate(c.local_more, 2)),
        remote_more=tuple(_auth(a, f"{where}.remote-{n}") for n, a in enumerate(c.remote_more, 2)),
        children=tuple(_child(n, ch) for n, ch in c.children.items()),
        local_port=c.local_port,
        remote_port=c.remote_port,
        encap=c.encap,
        mobike=c.mobike,
        redirect=c.redirect,
        redirect_allow=c.redirect_allow,
        fragmentation=c.fragmentation,
        send_certreq=c.send_certreq,
        send_cert=SendCert(str(c.send_cert)),
        dpd_delay=float(c.dpd_delay),
        rekey_time=float(c.rekey_time),
        reauth_time=float(c.reauth_time),
        pools=tuple(c.pools),
        vips=tuple(str(v) for v in c.vips),
    )


def build_engine_config(cfg: Config, *, resolve: bool = True) -> tuple[EngineConfig, MemoryCredentials]:
    """The engine's configuration and credentials; ``resolve=False`` keeps host names as they
    are written (``pyipsec check``: whether a name resolves depends on where it runs)."""
    s = cfg.settings
    engine = EngineConfig(
        connections={name: _connection(name, c, resolve=resolve) for name, c in cfg.connections.items()},
        retransmit=RetransmitPolicy(
            timeout=s.retransmit_timeout, base=s.retransmit_base, tries=s.retransmit_tries
        ),
        cookie_threshold=s.cookie_threshold,
        cookie_threshold_ip=s.cookie_threshold_ip,
        block_threshold=s.block_threshold,
        init_limit_half_open=s.init_limit_half_open,
        half_open_timeout=float(s.half_open_timeout),
        fragment_budget=s.ike_fragment_budget,
        nat_t_port=s.port_nat_t,
        keepalive_interval=float(s.keepalive_interval),
        fragment_size=s.ike_fragment_size,
        revocation_sources=any(a.crl_uris or a.ocsp_uris for a in cfg.authorities.values()),
        export_ike_keys=s.save_keys is not None,
        pools={
            name: PoolConfig(name, p.addrs[0], p.addrs[1], dns=tuple(p.dns), domains=tuple(p.domains))
            for name, p in cfg.pools.items()
        },
    )
    creds = MemoryCredentials()
    for name, secret in cfg.secrets.items():
        if isinstance(secret, IkeSecret):
            ids = tuple(_identity(i, f"secrets.{name}.id") for i in secret.id if not i.is_any)
            creds.add_secret(SharedSecret(secret.secret, ids))
        elif isinstance(secret, EapSecret):
            for ident in secret.id:
                creds.add_eap_password(eap_user_name(ident), secret.secret.decode("utf-8", "replace"))
        elif isinstance(secret, PrivateKeySecret):
            try:
                data = secret.file.read_bytes()
            except OSError as exc:
                raise ConfigError(
                    f"cannot read {secret.file}: {exc.strerror}", key=f"secrets.{name}.file"
                ) from None
            try:
                creds.add_private_key(load_private_key(data, secret.secret, source=str(secret.file)))
            except PyIpsecError as exc:  # garbage, or a wrong passphrase
                raise ConfigError(str(exc), key=f"secrets.{name}.file") from None
    return engine, creds


class StorePools:
    """Virtual-IP leases kept in the SQLite store, so they survive daemon restarts."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    def acquire(
        self, pool: PoolConfig, identity: str, requested: IPv4Address | IPv6Address | None = None
    ) -> IPv4Address | IPv6Address:
        return self.store.lease(pool.name, (pool.first, pool.last), identity, time.time())

    def release(self, pool: PoolConfig, address: IPv4Address | IPv6Address) -> None:
        self.store.release(pool.name, address, time.time())


def needs_store(cfg: Config) -> bool:
    """Whether ``cfg`` has pools or EAP users, which live in the SQLite store."""
    return bool(cfg.pools) or any(c.remote.auth.is_eap for c in cfg.connections.values())


def eap_server_factory(
    cfg: Config, store: SqliteStore | SharedStore | None
) -> Callable[[], MsChapV2Server] | None:
    """A gateway's EAP-MSCHAPv2 server over its users: ``[secrets.eap*]`` first, then the store
    (``daemon.eapusers``; the shared store by lookups); None without a store."""
    if store is None:
        return None
    if isinstance(store, SharedStore):
        configured = {name: user.nt_hash for name, user in configured_users(cfg).items()}
        return store.eap_server_factory(configured)
    users = EapUsers(configured_users(cfg), store)
    return lambda: MsChapV2Server(users, rng=OS_RANDOM)


def open_shared_store(cfg: Config) -> SharedStore:
    """The PostgreSQL store of ``[settings] store`` behind its worker (its schema checked)."""
    s = cfg.settings
    assert s.store is not None
    # imported by name here: psycopg is slow to import, and ``pyipsec check`` imports this module
    store = postgres().PostgresStore(s.store, gateway_id=s.gateway_id, grace=float(s.lease_grace))
    try:
        store.check()
    except StoreUnavailable as exc:  # the gateway starts anyway; new clients wait for the server
        _log.warning("%s; new clients fail until it is back", exc)
    except StoreError as exc:
        store.close()
        raise ConfigError(str(exc), key="settings.store") from None
    return SharedStore(store)


def build_engine(
    cfg: Config, *, rng: RandomSource = OS_RANDOM
) -> tuple[IkeEngine, SqliteStore | SharedStore | None]:
    """The engine for ``cfg``, and the store it uses (None: no pools, no EAP users; close it).
    A :class:`SharedStore` also needs ``start()`` on the running loop."""
    engine_config, creds = build_engine_config(cfg)
    store: SqliteStore | SharedStore | None = None
    pools: AddressPools = MemoryPools()
    if needs_store(cfg) and cfg.settings.store is not None:
        store = open_shared_store(cfg)
        pools = store.pools
    elif needs_store(cfg):
        sqlite = SqliteStore(cfg.settings.users)
        sqlite.release_all()  # no SA survives a restart; identities keep their addresses
        store, pools = sqlite, StorePools(sqlite)
    engine = IkeEngine(engine_config, creds, rng=rng, pools=pools, eap_server=eap_server_factory(cfg, store))
    return engine, store


def build_radius(cfg: Config) -> RadiusClient | None:
    """The RADIUS client of ``[radius]`` (None without the section)."""
    r = cfg.radius
    if r is None:
        return None
    servers = tuple(
        RadiusServer(name, str(s.address), s.auth_port, s.acct_port, secret=s.secret)
        for name, s in r.servers.items()
    )
    # gateways sharing a RADIUS server are told apart by their gateway_id unless configured
    nas_id = r.nas_identifier
    if "nas_identifier" not in r.model_fields_set and cfg.settings.gateway_id is not None:
        nas_id = cfg.settings.gateway_id
    return RadiusClient(RadiusSettings(servers, timeout=r.timeout, tries=r.tries, nas_identifier=nas_id))


def build_revocation(cfg: Config) -> RevocationChecker:
    """The revocation checker with the CRL files and OCSP responders of ``[authorities]``."""
    crls = [path for a in cfg.authorities.values() for path in a.crl_uris]
    responders = [uri for a in cfg.authorities.values() for uri in a.ocsp_uris]
    return RevocationChecker(crl_files=crls, ocsp_responders=responders)
