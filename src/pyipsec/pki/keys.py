"""Key types for issued certificates: RSA 2048-4096 or ECDSA P-256/P-384.

Theory of operation: a :class:`KeySpec` names an algorithm and a size and generates a fresh
key. The default is RSA 3072: Windows' and Android's IKEv2 clients handle RSA best (the
strongSwan Android app lists only RSA keys when it asks for a client certificate, and
Windows' machine-certificate path has RSA as its historical default), and 3072 bits match the
128-bit security level of the SHA-256 signatures and AES-256 ciphers in use (NIST SP 800-57
Part 1 Table 2). ECDSA P-256/P-384 are offered for all-Apple or all-pyipsec deployments. Other
key types (Ed25519, RSA-1024) are refused: ``cryptography``'s chain verifier and several
clients cannot use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pyipsec.pki.errors import PkiError

__all__ = ["DEFAULT_KEY", "KEY_CHOICES", "IssuingKey", "KeySpec", "describe_public_key"]

IssuingKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
"""The private keys this package issues and signs with."""

_CURVES: Final[dict[int, ec.EllipticCurve]] = {256: ec.SECP256R1(), 384: ec.SECP384R1()}

KEY_CHOICES: Final[tuple[str, ...]] = (
    "rsa",
    "rsa2048",
    "rsa3072",
    "rsa4096",
    "ecdsa",
    "ecdsa256",
    "ecdsa384",
)
"""The ``--key`` spellings: ``rsa`` is RSA 3072, ``ecdsa`` is ECDSA P-256."""

RSA_PUBLIC_EXPONENT: Final = 65537


@dataclass(frozen=True, slots=True)
class KeySpec:
    """A key type: ``algorithm`` ``"rsa"`` (``size`` in bits) or ``"ecdsa"`` (``size`` = curve bits)."""

    algorithm: Literal["rsa", "ecdsa"]
    size: int

    def __post_init__(self) -> None:
        if self.algorithm == "rsa" and self.size not in (2048, 3072, 4096):
            raise PkiError(f"RSA keys must have 2048, 3072 or 4096 bits, not {self.size}")
        if self.algorithm == "ecdsa" and self.size not in _CURVES:
            raise PkiError(f"ECDSA keys must use P-256 or P-384, not a {self.size}-bit curve")

    @classmethod
    def parse(cls, text: str) -> KeySpec:
        """One of :data:`KEY_CHOICES` (case-insensitive)."""
        value = text.strip().lower()
        if value in ("rsa", "ecdsa"):
            return cls("rsa", 3072) if value == "rsa" else cls("ecdsa", 256)
        for algorithm in ("rsa", "ecdsa"):
            if value.startswith(algorithm) and value[len(algorithm) :].isdigit():
                return cls("rsa" if algorithm == "rsa" else "ecdsa", int(value[len(algorithm) :]))
        raise PkiError(f"unknown key type {text!r} (choose from {', '.join(KEY_CHOICES)})")

    def generate(self) -> IssuingKey:
        """A fresh private key of this type."""
        if self.algorithm == "rsa":
            return rsa.generate_private_key(public_exponent=RSA_PUBLIC_EXPONENT, key_size=self.size)
        return ec.generate_private_key(_CURVES[self.size])

    def __str__(self) -> str:
        return f"RSA {self.size}" if self.algorithm == "rsa" else f"ECDSA P-{self.size}"


DEFAULT_KEY: Final = KeySpec("rsa", 3072)


def describe_public_key(key: object) -> str:
    """``"RSA 3072"``, ``"ECDSA P-256"``, or the key's class name for anything else."""
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        return f"ECDSA P-{key.curve.key_size}"
    return type(key).__name__.removeprefix("_")
