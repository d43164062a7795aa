"""The transform registry: IANA transform IDs (and key sizes) to algorithm specs.

Theory of operation: negotiation, key derivation, IKE message protection and ESP never name
an algorithm; they look up a spec here by the IDs from the SA payload and use only the
spec's sizes and ``new()``. Specs are immutable and built once at import. Unknown IDs and
disallowed key sizes raise :class:`~pyipsec.errors.UnsupportedAlgorithm`.

Key sizes (RFC 7296 §3.3.5): AES-based encryption transforms need a Key Length attribute of
128, 192 or 256 bits (``key_bits``); 3DES and ChaCha20-Poly1305 have a fixed size and take
none (``key_bits=None``, though passing their fixed size is accepted too).

Re-exports every spec class and keyed-object protocol so that callers can import them all
from here.
"""

from __future__ import annotations

from typing import TypeAlias

from pyipsec.crypto.aead import (
    AES_AEAD_KEY_BITS,
    AeadKey,
    AeadSpec,
    aes_ccm_spec,
    aes_gcm_spec,
    chacha20_poly1305_spec,
)
from pyipsec.crypto.cipher import (
    CBC_KEY_BITS,
    TRIPLE_DES_AVAILABLE,
    Cipher,
    CipherSpec,
    aes_cbc_spec,
    aes_ctr_spec,
    triple_des_spec,
)
from pyipsec.crypto.integ import INTEG_SPECS, Integ, IntegSpec
from pyipsec.crypto.ke import KE_SPECS, KeInitiator, KeSpec
from pyipsec.crypto.prf import PRF_SPECS, Prf, PrfSpec
from pyipsec.errors import UnsupportedAlgorithm
from pyipsec.iana.base import OpenIntEnum
from pyipsec.iana.transforms import EncrId, EsnId, IntegId, KeId, PrfId, TransformType

__all__ = [
    "REGISTRY",
    "AeadKey",
    "AeadSpec",
    "Cipher",
    "CipherSpec",
    "EncrSpec",
    "Integ",
    "IntegSpec",
    "KeInitiator",
    "KeSpec",
    "Prf",
    "PrfSpec",
    "TransformRegistry",
]

EncrSpec: TypeAlias = CipherSpec | AeadSpec

_ADDKE_TYPES = frozenset(
    {
        TransformType.ADDKE1,
        TransformType.ADDKE2,
        TransformType.ADDKE3,
        TransformType.ADDKE4,
        TransformType.ADDKE5,
        TransformType.ADDKE6,
        TransformType.ADDKE7,
    }
)


def _name(enum_type: type[OpenIntEnum], ident: int) -> str:
    try:
        return enum_type(ident).name
    except ValueError:  # pragma: no cover - open enums accept every int
        return str(ident)


class TransformRegistry:
    """Lookup of algorithm specs by transform ID."""

    __slots__ = ("_encr", "_fixed", "_integ", "_ke", "_key_sizes", "_prf")

    def __init__(
        self,
        *,
        encr: tuple[CipherSpec | AeadSpec, ...],
        prf: tuple[PrfSpec, ...],
        integ: tuple[IntegSpec, ...],
        ke: tuple[KeSpec, ...],
    ) -> None:
        self._encr: dict[tuple[int, int], CipherSpec | AeadSpec] = {}
        self._key_sizes: dict[int, tuple[int, ...]] = {}
        self._fixed: dict[int, int] = {}
        for spec in encr:
            self._encr[(int(spec.ident), spec.key_bits)] = spec
        for ident in {int(spec.ident) for spec in encr}:
            sizes = tuple(sorted(bits for (i, bits) in self._encr if i == ident))
            if ident in (EncrId.ENCR_3DES, EncrId.ENCR_CHACHA20_POLY1305):
                (self._fixed[ident],) = sizes
                self._key_sizes[ident] = ()
            else:
                self._key_sizes[ident] = sizes
        self._prf = {int(spec.ident): spec for spec in prf}
        self._integ = {int(spec.ident): spec for spec in integ}
        self._ke = {int(spec.ident): spec for spec in ke}

    def encr(self, ident: EncrId | int, key_bits: int | None = None) -> CipherSpec | AeadSpec:
        """The encryption transform ``ident`` at ``key_bits`` (None for fixed-size transforms)."""
        ident = int(ident)
        if ident not in self._key_sizes:
            raise UnsupportedAlgorithm(f"encryption transform {_name(EncrId, ident)} is not supported")
        fixed = self._fixed.get(ident)
        if fixed is not None:
            if key_bits not in (None, fixed):
                raise UnsupportedAlgorithm(
                    f"{_name(EncrId, ident)} has a fixed key size and takes no key length {key_bits}"
                )
            return self._encr[(ident, fixed)]
        if key_bits is None:
            raise UnsupportedAlgorithm(f"{_name(EncrId, ident)} needs a key length attribute")
        spec = self._encr.get((ident, key_bits))
        if spec is None:
            raise UnsupportedAlgorithm(
                f"{_name(EncrId, ident)} does not support {key_bits}-bit keys "
                f"(allowed: {', '.join(map(str, self._key_sizes[ident]))})"
            )
        return spec

    def key_sizes(self, ident: EncrId | int) -> tuple[int, ...]:
        """Allowed ``key_bits`` of an encryption transform; ``()`` when its size is fixed."""
        try:
            return self._key_sizes[int(ident)]
        except KeyError:
            raise UnsupportedAlgorithm(
                f"encryption transform {_name(EncrId, int(ident))} is not supported"
            ) from None

    def prf(self, ident: PrfId | int) -> PrfSpec:
        try:
            return self._prf[int(ident)]
        except KeyError:
            raise UnsupportedAlgorithm(f"PRF {_name(PrfId, int(ident))} is not supported") from None

    def integ(self, ident: IntegId | int) -> IntegSpec:
        try:
            return self._integ[int(ident)]
        except KeyError:
            raise UnsupportedAlgorithm(
                f"integrity transform {_name(IntegId, int(ident))} is not supported"
            ) from None

    def ke(self, ident: KeId | int) -> KeSpec:
        try:
            return self._ke[int(ident)]
        except KeyError:
            raise UnsupportedAlgorithm(
                f"key exchange method {_name(KeId, int(ident))} is not supported"
            ) from None

    def supported(self, ttype: TransformType | int) -> frozenset[int]:
        """Transform IDs implemented for a transform type (empty for unknown types).

        ADDKE1-7 (RFC 9370) share the KE registry. ESN is listed as both values because the
        ESP data plane handles either; it involves no algorithm.
        """
        ttype = int(ttype)
        if ttype == TransformType.ENCR:
            return frozenset(self._key_sizes)
        if ttype == TransformType.PRF:
            return frozenset(self._prf)
        if ttype == TransformType.INTEG:
            return frozenset(self._integ)
        if ttype == TransformType.KE or ttype in _ADDKE_TYPES:
            return frozenset(self._ke)
        if ttype == TransformType.ESN:
            return frozenset(int(v) for v in EsnId)
        return frozenset()


def _encr_specs() -> tuple[CipherSpec | AeadSpec, ...]:
    specs: list[CipherSpec | AeadSpec] = []
    for bits in CBC_KEY_BITS:
        specs.append(aes_cbc_spec(bits))
        specs.append(aes_ctr_spec(bits))
    for bits in AES_AEAD_KEY_BITS:
        for gcm in (EncrId.ENCR_AES_GCM_8, EncrId.ENCR_AES_GCM_12, EncrId.ENCR_AES_GCM_16):
            specs.append(aes_gcm_spec(gcm, bits))
        for ccm in (EncrId.ENCR_AES_CCM_8, EncrId.ENCR_AES_CCM_12, EncrId.ENCR_AES_CCM_16):
            specs.append(aes_ccm_spec(ccm, bits))
    specs.append(chacha20_poly1305_spec())
    if TRIPLE_DES_AVAILABLE:
        specs.append(triple_des_spec())
    return tuple(specs)


REGISTRY: TransformRegistry = TransformRegistry(
    encr=_encr_specs(), prf=PRF_SPECS, integ=INTEG_SPECS, ke=KE_SPECS
)
