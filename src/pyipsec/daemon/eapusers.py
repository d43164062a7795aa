"""The gateway's EAP accounts: ``[secrets.eap*]`` of the configuration, then the user store.

swanctl keeps EAP passwords in ``secrets.eap<suffix>`` (``id`` names the users, ``secret`` is the
password); ``pyipsec user`` keeps accounts in the SQLite store. A gateway serves both, as a
strongSwan gateway with credentials from several sources does. The configuration is looked at
first, so a password written there wins over an older one in the store. Each lookup says in
the log which source vouched for the user (never the password): an administrator who wonders
why a user gets in, or does not, reads it there.

Only NT hashes are kept (MD4 of the UTF-16LE password, RFC 2759 §8.3): EAP-MSCHAPv2 needs
nothing else, and no password stays in memory after start-up.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pyipsec.config.ids import Identity as ConfigIdentity
from pyipsec.config.model import Config, EapSecret
from pyipsec.errors import ConfigError
from pyipsec.store.sqlite import SqliteStore, StoreError, nt_hash_of

__all__ = ["ConfiguredUser", "EapUsers", "configured_users", "eap_user_name"]

log = logging.getLogger("pyipsec.daemon")


def eap_user_name(ident: ConfigIdentity) -> str:
    """The EAP user name of an identity: its text as written (``alice``, ``alice@example.org``)."""
    return ident.text or str(ident)


@dataclass(frozen=True, slots=True)
class ConfiguredUser:
    """One EAP user of the configuration: the NT hash of the password and where it was written."""

    nt_hash: bytes = field(repr=False)
    section: str  # "secrets.eap-alice"


def configured_users(cfg: Config) -> dict[str, ConfiguredUser]:
    """The EAP users of ``[secrets.eap*]``, by user name; ConfigError for an unusable password."""
    users: dict[str, ConfiguredUser] = {}
    for name, secret in cfg.secrets.items():
        if not isinstance(secret, EapSecret):
            continue
        password = secret.secret.decode("utf-8", "replace")
        try:
            nt_hash = nt_hash_of(password)
        except StoreError as exc:
            raise ConfigError(f"unusable EAP password: {exc}", key=f"secrets.{name}.secret") from None
        for ident in secret.id:
            if not ident.is_any:
                users.setdefault(eap_user_name(ident), ConfiguredUser(nt_hash, f"secrets.{name}"))
    return users


class EapUsers:
    """A :class:`~pyipsec.ike.eap.base.UserStore` over the configured users and the SQLite store."""

    def __init__(self, configured: Mapping[str, ConfiguredUser], store: SqliteStore | None) -> None:
        self._configured = dict(configured)
        self._store = store

    @property
    def store_path(self) -> Path | None:
        return self._store.path if self._store is not None else None

    def nt_hash(self, username: str) -> bytes | None:
        user = self._configured.get(username)
        if user is not None:
            log.info("EAP user %r: password from the configuration ([%s])", username, user.section)
            return user.nt_hash
        if self._store is None:
            return None
        nt_hash = self._store.nt_hash(username)
        if nt_hash is not None:
            log.info("EAP user %r: password from the user store %s", username, self._store.path)
        return nt_hash

    def record_failure(self, username: str) -> None:
        """Counted in the store for its own accounts (the configuration has no counter)."""
        if username not in self._configured and self._store is not None:
            self._store.record_failure(username)

    def __repr__(self) -> str:
        return f"EapUsers({len(self._configured)} configured, store {self.store_path})"
