"""Re-reading the configuration while the daemon runs (``pyipsec reload``, SIGHUP).

Theory of operation
-------------------
A reload has two phases, so that a bad file changes nothing.

:func:`prepare` reads the file as ``pyipsec check`` does (``config.load.read_config``, then
``daemon.preflight``: every problem with its key path) and builds everything the new
configuration needs before anything is touched: the engine configuration (certificates and
private keys read, host names resolved), the credentials, the EAP users, a RADIUS client and a
revocation checker when their sections changed, and the SQLite store if the daemon had none and
now needs one (pools or EAP users appeared). Any problem raises :class:`ReloadRefused` with the
issues; the running configuration stays as it is. What ``check`` only warns about (a
certificate that expires soon, a readable ``secret_file``) joins the summary's warnings.

:func:`apply` then changes the daemon in one synchronous step (no datagram, timer or command is
handled in between, so none sees half a reload):

* the engine gets the new configuration, credentials, pools and EAP users
  (``IkeEngine.reconfigure``): every IKE SA set up from now on — new peers, reconnects, a
  client's ``up`` — uses them, so a changed PSK or certificate is what the next authentication
  needs and a changed proposal is what the next negotiation offers;
* SAs that are up stay up, untouched: their packets keep flowing through the data plane, which
  the reload does not touch. An SA of a *changed* connection keeps the configuration it was set
  up with, as strongSwan keeps an IKE SA's peer config when ``swanctl --load-conns`` replaces
  it: its rekeys use the old proposals and lifetimes. ``down`` and ``up`` (or the peer
  reconnecting) move it to the new one. The summary lists those connections as ``changed``;
* the IKE SAs of a *removed* connection are deleted, the peer told with a Delete (the
  runtime's ``apply``), and nothing reconnects them (``Reconnect.reconfigure``); an *added*
  connection with ``start_action = "start"`` is initiated, as at start;
* pools: a pool changed or shrunk serves new leases from its new range only; live leases
  outside it are kept (each until its IKE SA goes) and reported as a warning, and once the new
  range is full a new client is refused with INTERNAL_ADDRESS_FAILURE, the log naming the pool
  ("pool 'rw' is exhausted: all 2 addresses are leased");
* ``[radius]`` and ``[authorities]``: rebuilt only when their sections changed; lookups in
  flight finish on the old RADIUS client, which is closed once they cannot last any longer.
  RADIUS accounting keeps its client (changing it needs a restart: a warning);
* ``[settings]``: the keys of :data:`LIVE_SETTINGS` (thresholds, timeouts, retransmission,
  fragment sizes, ``log_level``) apply at once; any other changed key (ports, ``listen``, the
  TUN device, the data plane, the control socket, the store, and keys added later unless they
  are listed here) keeps its running value and is reported as "needs a restart".

:func:`reload_config` is the runtime's one entry point: prepare, apply, log, and answer with a
JSON summary (connections ``added``, ``removed``, ``changed``, ``unchanged``; the IKE SAs
deleted and connections started; the settings applied, whether secrets and which pools changed;
``warnings``) or, refused, ``ok: false`` with the ``errors`` (file, key, message).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pyipsec.config.load import ConfigErrors, ConfigIssue, read_config
from pyipsec.config.model import Config, Radius
from pyipsec.control.protocol import JsonValue
from pyipsec.daemon.accounting import Accounting
from pyipsec.daemon.build import (
    StorePools,
    build_engine_config,
    build_radius,
    build_revocation,
    eap_server_factory,
    needs_store,
    open_shared_store,
)
from pyipsec.daemon.clock import Clock
from pyipsec.daemon.lookups import Lookups
from pyipsec.daemon.preflight import preflight
from pyipsec.daemon.reconnect import Reconnect
from pyipsec.daemon.sharedstore import SharedStore
from pyipsec.errors import ConfigError, PyIpsecError, UsageError
from pyipsec.ike.config import EngineConfig, PoolConfig
from pyipsec.ike.credentials import MemoryCredentials
from pyipsec.ike.eap.mschapv2 import MsChapV2Server
from pyipsec.ike.engine import IkeEngine, Output
from pyipsec.ike.pools import AddressPools
from pyipsec.radius import RadiusClient
from pyipsec.revocation import RevocationChecker
from pyipsec.store.base import mask_dsn
from pyipsec.store.sqlite import SqliteStore

__all__ = ["LIVE_SETTINGS", "ReloadPlan", "ReloadRefused", "Reloadable", "apply", "prepare", "reload_config"]

_log = logging.getLogger("pyipsec.daemon")

#: ``[settings]`` keys a reload applies; every other changed key needs a restart.
LIVE_SETTINGS = frozenset(
    {
        "cookie_threshold",
        "cookie_threshold_ip",
        "block_threshold",
        "init_limit_half_open",
        "half_open_timeout",
        "ike_fragment_budget",
        "ike_fragment_size",
        "retransmit_timeout",
        "retransmit_base",
        "retransmit_tries",
        "keepalive_interval",
        "log_level",
    }
)


class ReloadRefused(ConfigError):
    """The new configuration cannot be used; ``issues`` name the file and key of each problem."""

    def __init__(self, issues: Sequence[ConfigIssue], *, path: str = "") -> None:
        self.issues = tuple(issues)
        super().__init__(
            "reload refused, the running configuration stays: " + "; ".join(str(i) for i in self.issues),
            path="",
        )
        self.file = path


class Reloadable(Protocol):
    """What a reload needs of the runtime."""

    config: Config
    config_path: Path | None
    engine: IkeEngine
    store: SqliteStore | SharedStore | None
    clock: Clock
    reconnect: Reconnect
    lookups: Lookups
    accounting: Accounting | None

    def apply(self, out: Output) -> None: ...

    def initiate(self, name: str) -> None: ...


_Keep = object()  # a section that did not change: keep what runs


@dataclass
class ReloadPlan:
    """Everything the new configuration needs, built; nothing applied yet."""

    config: Config  # as it will run: settings that need a restart keep their running values
    engine_config: EngineConfig
    creds: MemoryCredentials
    eap_server: Callable[[], MsChapV2Server] | None
    store: SqliteStore | SharedStore | None  # opened by this reload (the daemon had none)
    radius: RadiusClient | object | None = _Keep
    revocation: RevocationChecker | object = _Keep
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    settings_applied: tuple[str, ...] = ()
    secrets_changed: bool = False
    pools_changed: tuple[str, ...] = ()  # added, removed or changed
    warnings: list[str] = field(default_factory=list)


def _issue(exc: ConfigError, path: str) -> ConfigIssue:
    if isinstance(exc, ConfigIssue):
        return exc
    message = str(exc)
    for prefix in (f"{exc.path}:{exc.key}: ", f"{exc.key}: ", f"{exc.path}: "):
        message = message.removeprefix(prefix)
    return ConfigIssue(message, path=exc.path or path, key=exc.key)


def _effective_settings(old: Config, new: Config) -> tuple[Config, tuple[str, ...], list[str]]:
    """``new`` with the settings that need a restart kept at their running values; the keys
    applied, and a warning per key kept."""
    applied: list[str] = []
    warnings: list[str] = []
    keep: dict[str, object] = {}
    for key in type(new.settings).model_fields:
        was, now = getattr(old.settings, key), getattr(new.settings, key)
        if was == now:
            continue
        if key in LIVE_SETTINGS:
            applied.append(key)
        else:
            keep[key] = was
            shown = mask_dsn(was) if key == "store" and isinstance(was, str) else _show(was)
            warnings.append(f"settings.{key} changed: needs a restart (keeping {shown})")
    if not keep:
        return new, tuple(applied), warnings
    settings = new.settings.model_copy(update=keep)
    return new.model_copy(update={"settings": settings}), tuple(applied), warnings


def _show(value: object) -> str:
    if isinstance(value, tuple | list):
        return ", ".join(str(v) for v in value)
    return str(value)


def prepare(rt: Reloadable) -> ReloadPlan:
    """Read, check and build the configuration file of ``rt``; ReloadRefused naming every problem."""
    if rt.config_path is None:
        raise ReloadRefused([ConfigIssue("the daemon was started without a configuration file")])
    path = str(rt.config_path)
    try:
        loaded = read_config(rt.config_path)
    except ConfigErrors as exc:
        raise ReloadRefused(exc.errors, path=path) from None
    errors, file_warnings = preflight(loaded)
    if errors:
        raise ReloadRefused(errors, path=path)
    old = rt.config
    new, applied, warnings = _effective_settings(old, loaded.config)
    try:
        engine_config, creds = build_engine_config(new)
    except ConfigError as exc:
        raise ReloadRefused([_issue(exc, path)], path=path) from None
    except (PyIpsecError, OSError) as exc:
        raise ReloadRefused([ConfigIssue(str(exc), path=path)], path=path) from None
    store = rt.store
    opened: SqliteStore | SharedStore | None = None
    try:
        if store is None and needs_store(new) and new.settings.store is not None:
            opened = store = open_shared_store(new)  # started by apply()
        elif store is None and needs_store(new):  # pools or EAP users appeared
            opened = store = SqliteStore(new.settings.users)
        eap_server = eap_server_factory(new, store)
    except (PyIpsecError, OSError) as exc:
        if opened is not None:
            opened.close()
        if isinstance(exc, ConfigError):
            raise ReloadRefused([_issue(exc, path)], path=path) from None
        raise ReloadRefused([ConfigIssue(str(exc), path=path, key="settings.users")], path=path) from None
    if isinstance(opened, SqliteStore):
        opened.release_all()  # nothing was leased from it: no SA had a pool before
    plan = ReloadPlan(new, engine_config, creds, eap_server, opened, settings_applied=applied)
    plan.warnings += [str(w) for w in (*loaded.warnings, *file_warnings)]  # as check prints them
    plan.warnings += warnings
    plan.secrets_changed = new.secrets != old.secrets
    plan.pools_changed = tuple(
        sorted(n for n in set(old.pools) | set(new.pools) if old.pools.get(n) != new.pools.get(n))
    )
    if new.radius != old.radius:
        plan.radius = build_radius(new)
        if rt.accounting is not None or (new.radius is not None and new.radius.accounting):
            plan.warnings.append("radius: accounting changes need a restart (it keeps what it started with)")
    if new.authorities != old.authorities:
        plan.revocation = build_revocation(new)
    _diff_connections(rt, plan)
    plan.warnings += _pool_warnings(rt.store or opened, old, engine_config)
    return plan


def _diff_connections(rt: Reloadable, plan: ReloadPlan) -> None:
    old_models, new_models = rt.config.connections, plan.config.connections
    old_built, new_built = rt.engine.config.connections, plan.engine_config.connections
    plan.added = tuple(sorted(set(new_models) - set(old_models)))
    plan.removed = tuple(sorted(set(old_models) - set(new_models)))
    both = sorted(set(old_models) & set(new_models))
    plan.changed = tuple(
        n for n in both if old_models[n] != new_models[n] or old_built.get(n) != new_built.get(n)
    )
    plan.unchanged = tuple(n for n in both if n not in plan.changed)


def _pool_warnings(
    store: SqliteStore | SharedStore | None, old: Config, engine_config: EngineConfig
) -> list[str]:
    """A warning per pool changed or removed with live leases outside its new range (not for
    the shared store: a reload does not wait for the database)."""
    if not isinstance(store, SqliteStore):
        return []
    out: list[str] = []
    for name in sorted(old.pools):
        pool: PoolConfig | None = engine_config.pools.get(name)
        live = [lease.address for lease in store.leases(name) if lease.live]
        outside = [a for a in live if pool is None or not pool.contains(a)]
        if not outside:
            continue
        listed = ", ".join(str(a) for a in outside[:5]) + (" …" if len(outside) > 5 else "")
        if pool is None:
            out.append(
                f"pools.{name} removed: {len(outside)} live lease(s) ({listed}) stay until their SAs close"
            )
        else:
            out.append(
                f"pools.{name} is now {pool.first}-{pool.last}: {len(outside)} live lease(s) outside it "
                f"({listed}) stay until their SAs close; new leases come from the new range only"
            )
    return out


def _pools(store: SqliteStore | SharedStore | None) -> AddressPools | None:
    if isinstance(store, SharedStore):
        return store.pools
    return StorePools(store) if store is not None else None


def _radius_grace(r: Radius | None) -> float:
    """How long a RADIUS exchange of ``r`` can last at most (every try of every server)."""
    if r is None:
        return 0.0
    return r.timeout * r.tries * len(r.servers) + 1.0


def apply(rt: Reloadable, plan: ReloadPlan) -> tuple[list[int], list[str]]:
    """Make ``plan`` the running configuration; the IKE SAs deleted and the connections started."""
    old = rt.config
    rt.engine.reconfigure(
        plan.engine_config,
        creds=plan.creds,
        pools=_pools(plan.store),
        eap_server=plan.eap_server,
    )
    if plan.store is not None:
        rt.store = plan.store
        if isinstance(plan.store, SharedStore):
            plan.store.start()
    rt.config = plan.config
    if isinstance(plan.radius, RadiusClient) or plan.radius is None:
        retired = rt.lookups.radius
        rt.lookups.radius = plan.radius
        if retired is not None:  # lookups in flight finish on it
            rt.clock.call_later(_radius_grace(old.radius), retired.close)
    if isinstance(plan.revocation, RevocationChecker):
        rt.lookups.revocation = plan.revocation
    if "log_level" in plan.settings_applied:
        logging.getLogger().setLevel(str(plan.config.settings.log_level).upper())
    to_start = rt.reconnect.reconfigure(plan.config)
    deleted: list[int] = []
    removed = set(plan.removed)
    for sa in rt.engine.list_sas():
        if sa.connection in removed:
            with contextlib.suppress(UsageError):  # already closing
                rt.apply(rt.engine.terminate(sa.sa_id, rt.clock.now()))
                deleted.append(sa.sa_id)
    started: list[str] = []
    for name in sorted(to_start):
        if not any(sa.original_initiator for sa in rt.engine.list_sas(name)):
            rt.initiate(name)
            started.append(name)
    return deleted, started


def _refused_json(exc: ReloadRefused) -> dict[str, JsonValue]:
    errors: list[JsonValue] = []
    for issue in exc.issues:
        item: dict[str, JsonValue] = {"file": issue.path, "key": issue.key, "message": issue.message}
        if issue.line is not None:
            item["line"] = issue.line
            item["column"] = issue.column
        errors.append(item)
    return {"ok": False, "file": exc.file, "errors": errors}


def reload_config(rt: Reloadable) -> dict[str, JsonValue]:
    """Reload ``rt``'s configuration file: the summary, or ``ok: false`` and the errors."""
    try:
        plan = prepare(rt)
    except ReloadRefused as exc:
        _log.error("reload of %s refused, the running configuration stays:", exc.file or "the configuration")
        for issue in exc.issues:
            _log.error("  %s", issue)
        return _refused_json(exc)
    deleted, started = apply(rt, plan)
    _log.info(
        "reloaded %s: %d connections (added: %s; removed: %s; changed: %s); settings applied: %s",
        rt.config_path,
        len(plan.config.connections),
        ", ".join(plan.added) or "none",
        ", ".join(plan.removed) or "none",
        ", ".join(plan.changed) or "none",
        ", ".join(plan.settings_applied) or "none",
    )
    for warning in plan.warnings:
        _log.warning("reload: %s", warning)
    return {
        "ok": True,
        "file": str(rt.config_path),
        "added": list(plan.added),
        "removed": list(plan.removed),
        "changed": list(plan.changed),
        "unchanged": list(plan.unchanged),
        "deleted_sas": list(deleted),
        "started": list(started),
        "settings_applied": list(plan.settings_applied),
        "secrets_changed": plan.secrets_changed,
        "pools_changed": list(plan.pools_changed),
        "warnings": list(plan.warnings),
    }
