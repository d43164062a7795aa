"""Where the engine gets secrets: the ``CredentialStore`` protocol and an in-memory store.

Secrets never leave this object except into key derivation; nothing here is logged. A
shared key is found like strongSwan finds one: among the secrets whose identity lists match
both our and the peer's identity, the one with the most specific match wins; a secret
without identities matches any pair. The secrets are indexed by identity (a gateway holds one
per user): a lookup scores only the secrets naming one of the two identities and those naming
none, in the order they were added (the first of equally specific ones wins).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.hazmat.primitives import serialization

from pyipsec.crypto.sig import SigningKey
from pyipsec.ike.config import Identity

__all__ = ["CredentialStore", "MemoryCredentials", "SharedSecret"]


class CredentialStore(Protocol):
    def shared_key(self, local: Identity, remote: Identity) -> bytes | None:
        """The PSK for this pair of identities, or None."""
        ...

    def private_key_for(self, public_key_der: bytes) -> SigningKey | None:
        """The private key whose public key (DER SubjectPublicKeyInfo) is given, or None."""
        ...

    def eap_password(self, user: str) -> str | None:
        """An EAP client's password for the user name ``user``, or None."""
        ...


@dataclass(frozen=True, slots=True)
class SharedSecret:
    secret: bytes = field(repr=False)
    identities: tuple[Identity, ...] = ()

    def score(self, local: Identity, remote: Identity) -> int:
        """0: no match; higher: more specific (each matched identity counts)."""
        if not self.identities:
            return 1
        hits = sum(1 for who in (local, remote) if any(i == who for i in self.identities))
        if hits == 0:
            return 0
        return 1 + hits


class MemoryCredentials:
    """A CredentialStore over lists of secrets and private keys."""

    def __init__(
        self,
        secrets: Sequence[SharedSecret] = (),
        private_keys: Sequence[SigningKey] = (),
        eap_passwords: dict[str, str] | None = None,
    ) -> None:
        self._secrets: list[SharedSecret] = []
        self._anyone: list[int] = []  # positions in ``_secrets`` of secrets without identities
        self._by_identity: dict[Identity, list[int]] = {}
        for secret in secrets:
            self.add_secret(secret)
        self._keys = {_spki(k): k for k in private_keys}
        self._eap = dict(eap_passwords or {})

    def add_eap_password(self, user: str, password: str) -> None:
        self._eap[user] = password

    def eap_password(self, user: str) -> str | None:
        return self._eap.get(user)

    def add_secret(self, secret: SharedSecret) -> None:
        position = len(self._secrets)
        self._secrets.append(secret)
        if not secret.identities:
            self._anyone.append(position)
        for ident in set(secret.identities):
            self._by_identity.setdefault(ident, []).append(position)

    def add_private_key(self, key: SigningKey) -> None:
        self._keys[_spki(key)] = key

    def shared_key(self, local: Identity, remote: Identity) -> bytes | None:
        best, best_score = None, 0
        positions = {*self._anyone, *self._by_identity.get(local, ()), *self._by_identity.get(remote, ())}
        for s in (self._secrets[k] for k in sorted(positions)):
            score = s.score(local, remote)
            if score > best_score:
                best, best_score = s, score
        return None if best is None else best.secret

    def private_key_for(self, public_key_der: bytes) -> SigningKey | None:
        return self._keys.get(public_key_der)

    def __repr__(self) -> str:
        counts = f"{len(self._secrets)} secrets, {len(self._keys)} keys, {len(self._eap)} EAP users"
        return f"MemoryCredentials({counts})"


def _spki(key: SigningKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
