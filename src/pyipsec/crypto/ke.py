"""Key exchange methods (Transform Type 4 and the RFC 9370 additional key exchanges).

Theory of operation: a :class:`KeSpec` is the registry entry for one method. The initiator
calls ``initiate(rng)``, sends ``public`` as its KE payload data and, once the responder's
KE data arrives, calls ``complete(peer_data)`` for the shared secret. The responder calls
``respond(peer_data, rng)`` once and gets its own KE data and the shared secret together.
For Diffie-Hellman methods ``respond`` is "generate a key pair, then exchange"; for ML-KEM
it encapsulates to the initiator's encapsulation key and sends the ciphertext back.

Private values come from the injected :class:`~pyipsec.crypto.rand.RandomSource`, so a
seeded source reproduces an exchange (except ML-KEM encapsulation, whose randomness
``cryptography`` draws from OpenSSL itself; key generation is seeded).

Encodings and secrets, and the checks on peer data (RFC 6989), which raise
:class:`~pyipsec.errors.InvalidKeyExchange`:

* MODP (RFC 2409 §6.2, RFC 3526): KE data is g^x mod p, big-endian, zero-padded to the
  length of p; the secret is g^xy likewise padded (RFC 7296 §3.4, §2.14). Reject data of the
  wrong length and y <= 1 or y >= p - 1 (RFC 6989 §2.1; for safe primes this suffices).
  The exponent x has twice the group's estimated strength (RFC 3526 §8), at least 256 bits.
  g^x itself is computed by OpenSSL (as the "shared secret" with the generator as peer), so
  no exponentiation on secrets runs in Python, except for legacy MODP_1024 (see
  :class:`_ModpGroup`).
* ECP (RFC 5903 §7): KE data is x | y, each coordinate zero-padded to the field size; the
  secret is the x coordinate of the shared point. Reject the wrong length and points not
  on the curve (RFC 6989 §2.3); the point at infinity has no x | y encoding.
* Curve25519/Curve448 (RFC 8031 §2): the raw 32/56-byte u-coordinate; reject the wrong
  length and an all-zero shared secret (RFC 8031 §2.3, RFC 7748 §6).
* ML-KEM-768/1024 (FIPS 203; draft-ietf-ipsecme-ikev2-mlkem): the initiator sends the
  encapsulation key, the responder the ciphertext; the secret is the 32-byte shared key.
  Reject wrong lengths and encapsulation keys that fail the FIPS 203 modulus check.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeAlias

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x448, x25519
from cryptography.utils import CryptographyDeprecationWarning

from pyipsec.crypto.rand import RandomSource
from pyipsec.errors import InvalidKeyExchange
from pyipsec.iana.transforms import KeId

# cryptography 50 deprecates finite-field DH; the warning fires on attribute access of the
# dh module, so fetch the classes once here and use them without further noise.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", CryptographyDeprecationWarning)
    from cryptography.hazmat.primitives.asymmetric import dh

    _DHParameterNumbers = dh.DHParameterNumbers
    _DHPublicNumbers = dh.DHPublicNumbers
    _DHPrivateNumbers = dh.DHPrivateNumbers

try:
    from cryptography.hazmat.primitives.asymmetric import mlkem as _mlkem

    _mlkem.MLKEM768PrivateKey.from_seed_bytes(bytes(64))
    MLKEM_AVAILABLE = True
except Exception:  # pragma: no cover - ImportError/UnsupportedAlgorithm on older builds
    MLKEM_AVAILABLE = False

if TYPE_CHECKING:
    _MlKemPrivate: TypeAlias = _mlkem.MLKEM768PrivateKey | _mlkem.MLKEM1024PrivateKey

__all__ = ["KE_SPECS", "MLKEM_AVAILABLE", "MODP_PRIMES", "KeInitiator", "KeSpec"]


class KeInitiator(Protocol):
    """The initiator's half of one key exchange."""

    @property
    def public(self) -> bytes:
        """Our KE payload data."""
        ...

    def complete(self, peer_data: bytes) -> bytes:
        """Validate the responder's KE data and return the shared secret."""
        ...


class _Method(Protocol):
    def initiate(self, rng: RandomSource) -> KeInitiator: ...

    def respond(self, peer_data: bytes, rng: RandomSource) -> tuple[bytes, bytes]: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class KeSpec:
    """Registry entry for one key exchange method.

    ``public_len`` is the length of the initiator's KE data and ``response_len`` that of the
    responder's (equal for Diffie-Hellman, different for ML-KEM, where ``is_kem`` is set).
    """

    ident: KeId
    legacy: bool
    is_kem: bool
    public_len: int
    response_len: int
    _method: _Method = field(repr=False, compare=False)

    def initiate(self, rng: RandomSource) -> KeInitiator:
        """Generate our private value and public KE data."""
        return self._method.initiate(rng)

    def respond(self, peer_data: bytes, rng: RandomSource) -> tuple[bytes, bytes]:
        """Answer the initiator's KE data: (our KE data, shared secret)."""
        return self._method.respond(peer_data, rng)


def _check_len(ident: KeId, what: str, data: bytes, expected: int) -> None:
    if len(data) != expected:
        raise InvalidKeyExchange(f"{ident.name}: {what} is {len(data)} bytes, expected {expected}")


# --- MODP (finite-field Diffie-Hellman) ---------------------------------------------------


_DhPrivate: TypeAlias = "dh.DHPrivateKey | int"


class _DhInitiator:
    __slots__ = ("_group", "_key", "public")

    def __init__(self, group: _ModpGroup, key: _DhPrivate, public: bytes) -> None:
        self._group = group
        self._key = key
        self.public = public

    def complete(self, peer_data: bytes) -> bytes:
        return self._group.shared(self._key, self._group.peer(peer_data))

    def __repr__(self) -> str:
        return f"<{self._group.ident.name} initiator>"


class _ModpGroup:
    """A MODP group with generator 2 (RFC 2409 §6, RFC 3526).

    With ``native`` set, the exponentiations run in OpenSSL. OpenSSL recognises the RFC 3526
    primes as named groups; it does not know RFC 2409 group 2 (MODP_1024) and re-validates
    its parameters, some 80 ms, whenever a key object is built, so that legacy group uses
    Python's ``pow`` instead (not constant-time; one more reason it is legacy).
    """

    __slots__ = ("_exp_len", "_generator", "_native", "_numbers", "byte_len", "ident", "p")

    def __init__(self, ident: KeId, prime: int, exp_len: int, *, native: bool) -> None:
        self.ident = ident
        self.p = prime
        self.byte_len = (self.p.bit_length() + 7) // 8
        self._exp_len = exp_len
        self._native = native
        # Built on first use: key objects are costly enough to keep out of import time.
        self._numbers: dh.DHParameterNumbers | None = None
        self._generator: dh.DHPublicKey | None = None

    def _openssl(self) -> tuple[dh.DHParameterNumbers, dh.DHPublicKey]:
        if self._numbers is None or self._generator is None:
            self._numbers = _DHParameterNumbers(self.p, 2)
            self._generator = _DHPublicNumbers(2, self._numbers).public_key()
        return self._numbers, self._generator

    def keypair(self, rng: RandomSource) -> tuple[_DhPrivate, bytes]:
        x = 0
        while x < 2:
            x = int.from_bytes(rng.random_bytes(self._exp_len), "big")
        if not self._native:
            return x, pow(2, x, self.p).to_bytes(self.byte_len, "big")
        numbers, generator = self._openssl()
        # g^x mod p as OpenSSL's DH "shared secret" with the generator as the peer value; the
        # public value in the scratch key is a placeholder that exchange() does not use.
        scratch = _DHPrivateNumbers(x, _DHPublicNumbers(2, numbers)).private_key()
        public = scratch.exchange(generator).rjust(self.byte_len, b"\0")
        y = int.from_bytes(public, "big")
        return _DHPrivateNumbers(x, _DHPublicNumbers(y, numbers)).private_key(), public

    def peer(self, data: bytes) -> int:
        """The peer's public value, checked as RFC 6989 §2.1 asks."""
        _check_len(self.ident, "peer public value", data, self.byte_len)
        y = int.from_bytes(data, "big")
        if y <= 1 or y >= self.p - 1:
            raise InvalidKeyExchange(f"{self.ident.name}: peer public value out of range (RFC 6989 §2.1)")
        return y

    def shared(self, key: _DhPrivate, peer: int) -> bytes:
        if isinstance(key, int):
            return pow(peer, key, self.p).to_bytes(self.byte_len, "big")
        numbers, _ = self._openssl()
        try:
            secret = key.exchange(_DHPublicNumbers(peer, numbers).public_key())
        except ValueError as exc:  # pragma: no cover - range already checked
            raise InvalidKeyExchange(f"{self.ident.name}: {exc}") from None
        return secret.rjust(self.byte_len, b"\0")

    def initiate(self, rng: RandomSource) -> KeInitiator:
        key, public = self.keypair(rng)
        return _DhInitiator(self, key, public)

    def respond(self, peer_data: bytes, rng: RandomSource) -> tuple[bytes, bytes]:
        peer = self.peer(peer_data)  # validate before spending a key generation
        key, public = self.keypair(rng)
        return public, self.shared(key, peer)


# --- ECP (NIST prime curves) --------------------------------------------------------------


class _EcInitiator:
    __slots__ = ("_group", "_key", "public")

    def __init__(self, group: _EcpGroup, key: ec.EllipticCurvePrivateKey, public: bytes) -> None:
        self._group = group
        self._key = key
        self.public = public

    def complete(self, peer_data: bytes) -> bytes:
        return self._group.shared(self._key, self._group.peer(peer_data))

    def __repr__(self) -> str:
        return f"<{self._group.ident.name} initiator>"


class _EcpGroup:
    """A random ECP group of RFC 5903 (NIST P-256/384/521)."""

    __slots__ = ("_curve", "_mask", "_order", "coord_len", "ident")

    def __init__(self, ident: KeId, curve: ec.EllipticCurve, order: int) -> None:
        self.ident = ident
        self._curve = curve
        self._order = order
        self.coord_len = (curve.key_size + 7) // 8
        self._mask = (1 << order.bit_length()) - 1

    def keypair(self, rng: RandomSource) -> tuple[ec.EllipticCurvePrivateKey, bytes]:
        # Rejection sampling of d in [1, n-1]: unbiased, and a source that returns a given
        # private value (e.g. an RFC 5903 test vector) yields exactly that value.
        n_bytes = (self._order.bit_length() + 7) // 8
        while True:
            d = int.from_bytes(rng.random_bytes(n_bytes), "big") & self._mask
            if 0 < d < self._order:
                break
        key = ec.derive_private_key(d, self._curve)
        point = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return key, point[1:]

    def peer(self, data: bytes) -> ec.EllipticCurvePublicKey:
        _check_len(self.ident, "peer public value", data, 2 * self.coord_len)
        try:
            return ec.EllipticCurvePublicKey.from_encoded_point(self._curve, b"\x04" + data)
        except ValueError:
            raise InvalidKeyExchange(
                f"{self.ident.name}: peer public value is not a point on the curve (RFC 6989 §2.3)"
            ) from None

    def shared(self, key: ec.EllipticCurvePrivateKey, peer: ec.EllipticCurvePublicKey) -> bytes:
        secret = key.exchange(ec.ECDH(), peer)
        return secret.rjust(self.coord_len, b"\0")

    def initiate(self, rng: RandomSource) -> KeInitiator:
        key, public = self.keypair(rng)
        return _EcInitiator(self, key, public)

    def respond(self, peer_data: bytes, rng: RandomSource) -> tuple[bytes, bytes]:
        peer = self.peer(peer_data)
        key, public = self.keypair(rng)
        return public, self.shared(key, peer)


# --- Curve25519 / Curve448 ----------------------------------------------------------------

_XPrivate: TypeAlias = x25519.X25519PrivateKey | x448.X448PrivateKey


class _XInitiator:
    __slots__ = ("_group", "_key", "public")

    def __init__(self, group: _MontgomeryGroup, key: _XPrivate, public: bytes) -> None:
        self._group = group
        self._key = key
        self.public = public

    def complete(self, peer_data: bytes) -> bytes:
        return self._group.shared(self._key, peer_data)

    def __repr__(self) -> str:
        return f"<{self._group.ident.name} initiator>"


class _MontgomeryGroup:
    """X25519 / X448 (RFC 7748) as IKEv2 key exchange methods (RFC 8031)."""

    __slots__ = ("ident", "size")

    def __init__(self, ident: KeId, size: int) -> None:
        self.ident = ident
        self.size = size

    def keypair(self, rng: RandomSource) -> tuple[_XPrivate, bytes]:
        key: _XPrivate
        if self.size == 32:
            key = x25519.X25519PrivateKey.from_private_bytes(rng.random_bytes(32))
        else:
            key = x448.X448PrivateKey.from_private_bytes(rng.random_bytes(56))
        return key, key.public_key().public_bytes_raw()

    def shared(self, key: _XPrivate, peer_data: bytes) -> bytes:
        _check_len(self.ident, "peer public value", peer_data, self.size)
        try:
            if isinstance(key, x25519.X25519PrivateKey):
                secret = key.exchange(x25519.X25519PublicKey.from_public_bytes(peer_data))
            else:
                secret = key.exchange(x448.X448PublicKey.from_public_bytes(peer_data))
        except ValueError:  # OpenSSL refuses an all-zero result
            secret = bytes(self.size)
        if not any(secret):
            raise InvalidKeyExchange(f"{self.ident.name}: all-zero shared secret (RFC 8031 §2.3)")
        return secret

    def initiate(self, rng: RandomSource) -> KeInitiator:
        key, public = self.keypair(rng)
        return _XInitiator(self, key, public)

    def respond(self, peer_data: bytes, rng: RandomSource) -> tuple[bytes, bytes]:
        _check_len(self.ident, "peer public value", peer_data, self.size)
        key, public = self.keypair(rng)
        return public, self.shared(key, peer_data)


# --- ML-KEM -------------------------------------------------------------------------------


class _KemInitiator:
    __slots__ = ("_group", "_key", "public")

    def __init__(self, group: _MlKem, key: _MlKemPrivate, public: bytes) -> None:
        self._group = group
        self._key = key
        self.public = public

    def complete(self, peer_data: bytes) -> bytes:
        _check_len(self._group.ident, "ciphertext", peer_data, self._group.ct_len)
        try:
            return self._key.decapsulate(peer_data)
        except ValueError as exc:  # pragma: no cover - ML-KEM decapsulation rejects implicitly
            raise InvalidKeyExchange(f"{self._group.ident.name}: {exc}") from None

    def __repr__(self) -> str:
        return f"<{self._group.ident.name} initiator>"


class _MlKem:
    """ML-KEM-768/1024 (FIPS 203) as an IKEv2 key exchange method."""

    __slots__ = ("ct_len", "ek_len", "ident")

    def __init__(self, ident: KeId, ek_len: int, ct_len: int) -> None:
        self.ident = ident
        self.ek_len = ek_len
        self.ct_len = ct_len

    def initiate(self, rng: RandomSource) -> KeInitiator:
        seed = rng.random_bytes(64)  # FIPS 203 (d, z) seed: key generation is reproducible
        key: _MlKemPrivate
        if self.ident == KeId.ML_KEM_768:
            key = _mlkem.MLKEM768PrivateKey.from_seed_bytes(seed)
        else:
            key = _mlkem.MLKEM1024PrivateKey.from_seed_bytes(seed)
        return _KemInitiator(self, key, key.public_key().public_bytes_raw())

    def respond(self, peer_data: bytes, rng: RandomSource) -> tuple[bytes, bytes]:
        del rng  # cryptography takes encapsulation randomness from OpenSSL; it cannot be injected
        _check_len(self.ident, "encapsulation key", peer_data, self.ek_len)
        try:
            if self.ident == KeId.ML_KEM_768:
                secret, ciphertext = _mlkem.MLKEM768PublicKey.from_public_bytes(peer_data).encapsulate()
            else:
                secret, ciphertext = _mlkem.MLKEM1024PublicKey.from_public_bytes(peer_data).encapsulate()
        except ValueError:
            raise InvalidKeyExchange(
                f"{self.ident.name}: encapsulation key fails the FIPS 203 §7.2 input check"
            ) from None
        return ciphertext, secret


# --- Group parameters ---------------------------------------------------------------------
# The MODP primes are p = 2^n - 2^(n-64) - 1 + 2^64 * (floor(2^(n-130) * pi) + k) with the k
# of each RFC; the unit tests recompute them from pi and check that p and (p-1)/2 are prime.

# RFC 2409 §6.2 (group 2)
_MODP_1024_HEX = (
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF"
)
# RFC 3526 §2 (group 5)
_MODP_1536_HEX = (
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F"
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA237327FFFFFFFFFFFFFFFF"
)
# RFC 3526 §3 (group 14)
_MODP_2048_HEX = (
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F"
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510"
    "15728E5A8AACAA68FFFFFFFFFFFFFFFF"
)
# RFC 3526 §4 (group 15)
_MODP_3072_HEX = (
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F"
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510"
    "15728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7"
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200C"
    "BBE117577A615D6C770988C0BAD946E208E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF"
)
# RFC 3526 §5 (group 16)
_MODP_4096_HEX = (
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F"
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510"
    "15728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7"
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200C"
    "BBE117577A615D6C770988C0BAD946E208E24FA074E5AB3143DB5BFCE0FD108E4B82D120A92108011A723C12A787E6D7"
    "88719A10BDBA5B2699C327186AF4E23C1A946834B6150BDA2583E9CA2AD44CE8DBBBC2DB04DE8EF92E8EFC141FBECAA6"
    "287C59474E6BC05D99B2964FA090C3A2233BA186515BE7ED1F612970CEE2D7AFB81BDD762170481CD0069127D5B05AA9"
    "93B4EA988D8FDDC186FFB7DC90A6C08F4DF435C934063199FFFFFFFFFFFFFFFF"
)
# RFC 3526 §6 (group 17)
_MODP_6144_HEX = (
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F"
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510"
    "15728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7"
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200C"
    "BBE117577A615D6C770988C0BAD946E208E24FA074E5AB3143DB5BFCE0FD108E4B82D120A92108011A723C12A787E6D7"
    "88719A10BDBA5B2699C327186AF4E23C1A946834B6150BDA2583E9CA2AD44CE8DBBBC2DB04DE8EF92E8EFC141FBECAA6"
    "287C59474E6BC05D99B2964FA090C3A2233BA186515BE7ED1F612970CEE2D7AFB81BDD762170481CD0069127D5B05AA9"
    "93B4EA988D8FDDC186FFB7DC90A6C08F4DF435C93402849236C3FAB4D27C7026C1D4DCB2602646DEC9751E763DBA37BD"
    "F8FF9406AD9E530EE5DB382F413001AEB06A53ED9027D831179727B0865A8918DA3EDBEBCF9B14ED44CE6CBACED4BB1B"
    "DB7F1447E6CC254B332051512BD7AF426FB8F401378CD2BF5983CA01C64B92ECF032EA15D1721D03F482D7CE6E74FEF6"
    "D55E702F46980C82B5A84031900B1C9E59E7C97FBEC7E8F323A97A7E36CC88BE0F1D45B7FF585AC54BD407B22B4154AA"
    "CC8F6D7EBF48E1D814CC5ED20F8037E0A79715EEF29BE32806A1D58BB7C5DA76F550AA3D8A1FBFF0EB19CCB1A313D55C"
    "DA56C9EC2EF29632387FE8D76E3C0468043E8F663F4860EE12BF2D5B0B7474D6E694F91E6DCC4024FFFFFFFFFFFFFFFF"
)
# RFC 3526 §7 (group 18)
_MODP_8192_HEX = (
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F"
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510"
    "15728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7"
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200C"
    "BBE117577A615D6C770988C0BAD946E208E24FA074E5AB3143DB5BFCE0FD108E4B82D120A92108011A723C12A787E6D7"
    "88719A10BDBA5B2699C327186AF4E23C1A946834B6150BDA2583E9CA2AD44CE8DBBBC2DB04DE8EF92E8EFC141FBECAA6"
    "287C59474E6BC05D99B2964FA090C3A2233BA186515BE7ED1F612970CEE2D7AFB81BDD762170481CD0069127D5B05AA9"
    "93B4EA988D8FDDC186FFB7DC90A6C08F4DF435C93402849236C3FAB4D27C7026C1D4DCB2602646DEC9751E763DBA37BD"
    "F8FF9406AD9E530EE5DB382F413001AEB06A53ED9027D831179727B0865A8918DA3EDBEBCF9B14ED44CE6CBACED4BB1B"
    "DB7F1447E6CC254B332051512BD7AF426FB8F401378CD2BF5983CA01C64B92ECF032EA15D1721D03F482D7CE6E74FEF6"
    "D55E702F46980C82B5A84031900B1C9E59E7C97FBEC7E8F323A97A7E36CC88BE0F1D45B7FF585AC54BD407B22B4154AA"
    "CC8F6D7EBF48E1D814CC5ED20F8037E0A79715EEF29BE32806A1D58BB7C5DA76F550AA3D8A1FBFF0EB19CCB1A313D55C"
    "DA56C9EC2EF29632387FE8D76E3C0468043E8F663F4860EE12BF2D5B0B7474D6E694F91E6DBE115974A3926F12FEE5E4"
    "38777CB6A932DF8CD8BEC4D073B931BA3BC832B68D9DD300741FA7BF8AFC47ED2576F6936BA424663AAB639C5AE4F568"
    "3423B4742BF1C978238F16CBE39D652DE3FDB8BEFC848AD922222E04A4037C0713EB57A81A23F0C73473FC646CEA306B"
    "4BCBC8862F8385DDFA9D4B7FA2C087E879683303ED5BDD3A062B3CF5B3A278A66D2A13F83F44F82DDF310EE074AB6A36"
    "4597E899A0255DC164F31CC50846851DF9AB48195DED7EA1B1D510BD7EE74D73FAF36BC31ECFA268359046F4EB879F92"
    "4009438B481C6CD7889A002ED5EE382BC9190DA6FC026E479558E4475677E9AA9E3050E2765694DFC81F56E880B96E71"
    "60C980DD98EDD3DFFFFFFFFFFFFFFFFF"
)

MODP_PRIMES: dict[KeId, int] = {
    KeId.MODP_1024: int(_MODP_1024_HEX, 16),
    KeId.MODP_1536: int(_MODP_1536_HEX, 16),
    KeId.MODP_2048: int(_MODP_2048_HEX, 16),
    KeId.MODP_3072: int(_MODP_3072_HEX, 16),
    KeId.MODP_4096: int(_MODP_4096_HEX, 16),
    KeId.MODP_6144: int(_MODP_6144_HEX, 16),
    KeId.MODP_8192: int(_MODP_8192_HEX, 16),
}

# Private exponent length in bytes: twice the upper strength estimate of RFC 3526 §8, at
# least 256 bits.
_MODP_EXP_LEN: dict[KeId, int] = {
    KeId.MODP_1024: 32,
    KeId.MODP_1536: 32,
    KeId.MODP_2048: 40,
    KeId.MODP_3072: 53,
    KeId.MODP_4096: 60,
    KeId.MODP_6144: 68,
    KeId.MODP_8192: 78,
}
_MODP_LEGACY = frozenset({KeId.MODP_1024, KeId.MODP_1536})

# Group orders n of the NIST curves (FIPS 186-4 §D.1.2; RFC 5903 §3).
_P256_ORDER = int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)
_P384_ORDER = int(
    "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973", 16
)
_P521_ORDER = int(
    "01FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"
    "FA51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409",
    16,
)


def _build_specs() -> tuple[KeSpec, ...]:
    specs: list[KeSpec] = []
    for ident, prime in MODP_PRIMES.items():
        modp = _ModpGroup(ident, prime, _MODP_EXP_LEN[ident], native=ident != KeId.MODP_1024)
        specs.append(
            KeSpec(
                ident=ident,
                legacy=ident in _MODP_LEGACY,
                is_kem=False,
                public_len=modp.byte_len,
                response_len=modp.byte_len,
                _method=modp,
            )
        )
    for ident, curve, order in (
        (KeId.ECP_256, ec.SECP256R1(), _P256_ORDER),
        (KeId.ECP_384, ec.SECP384R1(), _P384_ORDER),
        (KeId.ECP_521, ec.SECP521R1(), _P521_ORDER),
    ):
        ecp = _EcpGroup(ident, curve, order)
        size = 2 * ecp.coord_len
        specs.append(
            KeSpec(ident=ident, legacy=False, is_kem=False, public_len=size, response_len=size, _method=ecp)
        )
    for ident, size in ((KeId.CURVE25519, 32), (KeId.CURVE448, 56)):
        specs.append(
            KeSpec(
                ident=ident,
                legacy=False,
                is_kem=False,
                public_len=size,
                response_len=size,
                _method=_MontgomeryGroup(ident, size),
            )
        )
    if MLKEM_AVAILABLE:
        # FIPS 203 Table 3: encapsulation key and ciphertext sizes.
        for ident, ek_len, ct_len in ((KeId.ML_KEM_768, 1184, 1088), (KeId.ML_KEM_1024, 1568, 1568)):
            specs.append(
                KeSpec(
                    ident=ident,
                    legacy=False,
                    is_kem=True,
                    public_len=ek_len,
                    response_len=ct_len,
                    _method=_MlKem(ident, ek_len, ct_len),
                )
            )
    return tuple(specs)


KE_SPECS: tuple[KeSpec, ...] = _build_specs()
