"""IKE and Child SA key derivation and the AUTH payload inputs (RFC 7296 §2.13-2.18).

Theory of operation:

- ``SKEYSEED = prf(Ni | Nr, g^ir)`` for a new IKE SA (§2.14). PRFs with a fixed key size
  (AES-XCBC-PRF-128, AES-CMAC-PRF-128) take half their key from the start of each nonce.
- ``SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr)`` when an IKE SA is rekeyed (§2.18);
  the same formula, with the additional key exchange's shared secret in place of g^ir,
  chains the keys after each IKE_INTERMEDIATE / IKE_FOLLOWUP_KE exchange (RFC 9370 §2.2.2).
- ``{SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr)``;
  SK_d/SK_pi/SK_pr are as long as the PRF's preferred key, SK_a as the integrity key, SK_e
  as the cipher's keying material — for AEAD key and salt (RFC 5282 §7.1), and no SK_a.
- Child SA ``KEYMAT = prf+(SK_d, [g^ir (new) | SK(1)..SK(n) |] Ni | Nr)`` (§2.17, RFC 9370
  §2.2.4), split as encryption then integrity key for initiator→responder traffic, then the
  same for the reverse direction.
- AUTH (§2.15): the signed octets are ``RealMessage | Nonce(peer) | prf(SK_p, IDx')`` where
  IDx' is the ID payload body; a shared-key AUTH is ``prf(prf(secret, "Key Pad for IKEv2"),
  octets)``, with the PSK, the EAP MSK (§2.16) or, for NULL authentication, SK_p (RFC 7619).
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field

from pyipsec.crypto.aead import AeadSpec
from pyipsec.crypto.cipher import CipherSpec
from pyipsec.crypto.integ import IntegSpec
from pyipsec.crypto.prf import PrfSpec
from pyipsec.iana.transforms import PrfId

__all__ = [
    "KEY_PAD",
    "ChildKeys",
    "IkeKeys",
    "auth_octets",
    "derive_child_keys",
    "derive_ike_keys",
    "psk_auth",
    "rekey_skeyseed",
    "skeyseed",
    "verify_psk_auth",
]

KEY_PAD = b"Key Pad for IKEv2"
"""The 17 ASCII octets RFC 7296 §2.15 mixes into a shared secret before using it."""

_FIXED_KEY_PRFS = frozenset({PrfId.PRF_AES128_XCBC, PrfId.PRF_AES128_CMAC})


@dataclass(frozen=True, slots=True)
class IkeKeys:
    """The seven IKE SA keys (RFC 7296 §2.14); ``sk_ai``/``sk_ar`` are empty with AEAD."""

    sk_d: bytes = field(repr=False)
    sk_ai: bytes = field(repr=False)
    sk_ar: bytes = field(repr=False)
    sk_ei: bytes = field(repr=False)
    sk_er: bytes = field(repr=False)
    sk_pi: bytes = field(repr=False)
    sk_pr: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class ChildKeys:
    """Child SA keys; the ``_i`` keys protect initiator→responder traffic (RFC 7296 §2.17).

    Encryption keys of AEAD transforms end with the salt; the integrity keys are then empty.
    """

    encr_i: bytes = field(repr=False)
    integ_i: bytes = field(repr=False)
    encr_r: bytes = field(repr=False)
    integ_r: bytes = field(repr=False)


def _nonce_key(prf: PrfSpec, ni: bytes, nr: bytes) -> bytes:
    """The PRF key Ni | Nr, or half of the fixed key from the start of each nonce (§2.14)."""
    if prf.ident in _FIXED_KEY_PRFS:
        half = prf.key_len // 2
        return ni[:half] + nr[: prf.key_len - half]
    return ni + nr


def skeyseed(prf: PrfSpec, ni: bytes, nr: bytes, g_ir: bytes) -> bytes:
    """SKEYSEED = prf(Ni | Nr, g^ir) for a new IKE SA (RFC 7296 §2.14)."""
    return prf.new(_nonce_key(prf, ni, nr)).compute(g_ir)


def rekey_skeyseed(prf: PrfSpec, sk_d_old: bytes, g_ir_new: bytes, ni: bytes, nr: bytes) -> bytes:
    """SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr) (RFC 7296 §2.18; RFC 9370 §2.2.2).

    ``prf`` is the PRF of the *old* SA for a rekey (§2.18), the IKE SA's PRF for RFC 9370.
    """
    return prf.new(sk_d_old).compute(g_ir_new + ni + nr)


def derive_ike_keys(
    prf_spec: PrfSpec,
    encr_spec: CipherSpec | AeadSpec,
    integ_spec: IntegSpec | None,
    skeyseed: bytes,
    *,
    ni: bytes,
    nr: bytes,
    spi_i: bytes,
    spi_r: bytes,
) -> IkeKeys:
    """The IKE SA keys from prf+(SKEYSEED, Ni | Nr | SPIi | SPIr) (RFC 7296 §2.14).

    Nonces and SPIs are keyword-only: four same-typed byte strings are too easy to swap.
    """
    if isinstance(encr_spec, AeadSpec) and integ_spec is not None:
        raise ValueError("an AEAD transform takes no integrity transform (RFC 5282 §8)")
    if not isinstance(encr_spec, AeadSpec) and integ_spec is None:
        raise ValueError(f"{encr_spec.ident.name} needs an integrity transform")
    p, a, e = prf_spec.key_len, 0 if integ_spec is None else integ_spec.key_len, encr_spec.keymat_len
    stream = prf_spec.prf_plus(skeyseed, ni + nr + spi_i + spi_r, 3 * p + 2 * a + 2 * e)
    out: list[bytes] = []
    pos = 0
    for n in (p, a, a, e, e, p, p):
        out.append(stream[pos : pos + n])
        pos += n
    return IkeKeys(*out)


def derive_child_keys(
    prf_spec: PrfSpec,
    sk_d: bytes,
    encr_spec: CipherSpec | AeadSpec,
    integ_spec: IntegSpec | None,
    *,
    ni: bytes,
    nr: bytes,
    g_ir_new: bytes | None = None,
    additional_secrets: Sequence[bytes] = (),
) -> ChildKeys:
    """KEYMAT = prf+(SK_d, [g^ir (new) | SK(1) | ... | SK(n) |] Ni | Nr) (RFC 7296 §2.17).

    ``g_ir_new`` is the PFS shared secret of a CREATE_CHILD_SA exchange, and
    ``additional_secrets`` those of its additional key exchanges (RFC 9370 §2.2.4), in order.
    """
    if isinstance(encr_spec, AeadSpec) and integ_spec is not None:
        raise ValueError("an AEAD transform takes no integrity transform (RFC 5282 §8)")
    e, a = encr_spec.keymat_len, 0 if integ_spec is None else integ_spec.key_len
    seed = (g_ir_new or b"") + b"".join(additional_secrets) + ni + nr
    stream = prf_spec.prf_plus(sk_d, seed, 2 * (e + a))
    return ChildKeys(
        encr_i=stream[:e],
        integ_i=stream[e : e + a],
        encr_r=stream[e + a : 2 * e + a],
        integ_r=stream[2 * e + a :],
    )


def auth_octets(
    prf_spec: PrfSpec, sk_p: bytes, real_message: bytes, peer_nonce: bytes, id_payload_body: bytes
) -> bytes:
    """InitiatorSignedOctets / ResponderSignedOctets (RFC 7296 §2.15).

    ``real_message`` is the sender's first message (IKE_SA_INIT request for the initiator,
    response for the responder) as sent, from the IKE header on; ``peer_nonce`` the other
    side's nonce data; ``sk_p`` the sender's SK_pi or SK_pr; ``id_payload_body`` its IDi/IDr
    payload without the generic header (ID Type, RESERVED, data).
    """
    return real_message + peer_nonce + prf_spec.new(sk_p).compute(id_payload_body)


def psk_auth(prf_spec: PrfSpec, psk: bytes, octets: bytes) -> bytes:
    """AUTH = prf(prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets>) (RFC 7296 §2.15).

    With the EAP MSK as the secret this is the EAP AUTH value (§2.16).
    """
    return prf_spec.new(prf_spec.new(psk).compute(KEY_PAD)).compute(octets)


def verify_psk_auth(prf_spec: PrfSpec, psk: bytes, octets: bytes, auth_data: bytes) -> bool:
    """Whether ``auth_data`` is the shared-key AUTH value, compared in constant time."""
    return hmac.compare_digest(psk_auth(prf_spec, psk, octets), auth_data)
