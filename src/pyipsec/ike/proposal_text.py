"""Proposal keywords in strongSwan's grammar, e.g. ``aes256gcm16-prfsha384-x25519``.

Theory of operation: a proposal string is a comma-separated list of proposals; each
proposal is a dash-separated list of algorithm keywords in any order, where several
keywords of one kind are alternatives in descending preference (strongSwan's
"IKEv2 Cipher Suites" keywords). :func:`parse_proposals` turns each into an
:class:`~pyipsec.ike.proposal.ProposalSpec` and enforces the rules a usable proposal
must meet:

- an encryption algorithm is required; AEAD and classic ciphers are not mixed, a classic
  cipher needs an integrity algorithm and an AEAD one takes none (RFC 7296 §3.3, RFC 5282 §8);
- IKE needs a key exchange method and a PRF; without an explicit ``prf*`` keyword the PRFs
  follow the integrity algorithms (``sha256`` → ``prfsha256``), as strongSwan does, so an AEAD
  IKE proposal must name its PRF; ``esn``/``noesn`` apply to ESP only, which defaults to
  ``noesn``;
- legacy algorithms (``modp1024``, ``modp1536``, ``sha1``, ``prfsha1``, ``3des``; RFC 8247)
  are refused unless ``allow_legacy`` is set;
- ``ke1_`` … ``ke7_`` prefixes name additional key exchanges (RFC 9370), ``keN_none`` makes
  one optional; the lone proposal ``default`` stands for the built-in defaults.

:func:`format_proposal` prints the canonical keywords back, so canonical strings round-trip.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import TypeVar

from pyipsec.errors import ConfigError
from pyipsec.iana.ikev2 import ProtocolId
from pyipsec.iana.transforms import EncrId, EsnId, IntegId, KeId, PrfId
from pyipsec.ike.proposal import ADDKE_TYPES, ChosenProposal, EncrAlg, ProposalSpec

__all__ = [
    "AEAD_ENCR",
    "DEFAULT_ESP_PROPOSALS",
    "DEFAULT_IKE_PROPOSALS",
    "LEGACY_KEYWORDS",
    "format_chosen",
    "format_proposal",
    "parse_proposals",
]

# Canonical keyword first; later keywords with the same value are accepted aliases.
_ENCR: dict[str, EncrAlg] = {"3des": (EncrId.ENCR_3DES, None)}
for _bits in (128, 192, 256):
    _ENCR[f"aes{_bits}"] = (EncrId.ENCR_AES_CBC, _bits)
    _ENCR[f"aes{_bits}ctr"] = (EncrId.ENCR_AES_CTR, _bits)
    for _icv, _gcm, _ccm in (
        (16, EncrId.ENCR_AES_GCM_16, EncrId.ENCR_AES_CCM_16),
        (12, EncrId.ENCR_AES_GCM_12, EncrId.ENCR_AES_CCM_12),
        (8, EncrId.ENCR_AES_GCM_8, EncrId.ENCR_AES_CCM_8),
    ):
        _ENCR[f"aes{_bits}gcm{_icv}"] = (_gcm, _bits)
        _ENCR[f"aes{_bits}gcm{_icv * 8}"] = (_gcm, _bits)
        _ENCR[f"aes{_bits}ccm{_icv}"] = (_ccm, _bits)
        _ENCR[f"aes{_bits}ccm{_icv * 8}"] = (_ccm, _bits)
_ENCR["chacha20poly1305"] = (EncrId.ENCR_CHACHA20_POLY1305, None)
_ENCR["aes"] = (EncrId.ENCR_AES_CBC, 128)

_INTEG: dict[str, IntegId] = {
    "sha1": IntegId.AUTH_HMAC_SHA1_96,
    "sha": IntegId.AUTH_HMAC_SHA1_96,
    "sha256": IntegId.AUTH_HMAC_SHA2_256_128,
    "sha2_256": IntegId.AUTH_HMAC_SHA2_256_128,
    "sha384": IntegId.AUTH_HMAC_SHA2_384_192,
    "sha2_384": IntegId.AUTH_HMAC_SHA2_384_192,
    "sha512": IntegId.AUTH_HMAC_SHA2_512_256,
    "sha2_512": IntegId.AUTH_HMAC_SHA2_512_256,
    "aesxcbc": IntegId.AUTH_AES_XCBC_96,
    "aescmac": IntegId.AUTH_AES_CMAC_96,
}

_PRF: dict[str, PrfId] = {
    "prfsha1": PrfId.PRF_HMAC_SHA1,
    "prfsha256": PrfId.PRF_HMAC_SHA2_256,
    "prfsha384": PrfId.PRF_HMAC_SHA2_384,
    "prfsha512": PrfId.PRF_HMAC_SHA2_512,
    "prfaesxcbc": PrfId.PRF_AES128_XCBC,
    "prfaescmac": PrfId.PRF_AES128_CMAC,
}

_PRF_FOR_INTEG: dict[IntegId, PrfId] = {
    IntegId.AUTH_HMAC_SHA1_96: PrfId.PRF_HMAC_SHA1,
    IntegId.AUTH_HMAC_SHA2_256_128: PrfId.PRF_HMAC_SHA2_256,
    IntegId.AUTH_HMAC_SHA2_384_192: PrfId.PRF_HMAC_SHA2_384,
    IntegId.AUTH_HMAC_SHA2_512_256: PrfId.PRF_HMAC_SHA2_512,
    IntegId.AUTH_AES_XCBC_96: PrfId.PRF_AES128_XCBC,
    IntegId.AUTH_AES_CMAC_96: PrfId.PRF_AES128_CMAC,
}

_KE: dict[str, KeId] = {
    "modp1024": KeId.MODP_1024,
    "modp1536": KeId.MODP_1536,
    "modp2048": KeId.MODP_2048,
    "modp3072": KeId.MODP_3072,
    "modp4096": KeId.MODP_4096,
    "modp6144": KeId.MODP_6144,
    "modp8192": KeId.MODP_8192,
    "ecp256": KeId.ECP_256,
    "ecp384": KeId.ECP_384,
    "ecp521": KeId.ECP_521,
    "x25519": KeId.CURVE25519,
    "curve25519": KeId.CURVE25519,
    "x448": KeId.CURVE448,
    "curve448": KeId.CURVE448,
    "mlkem512": KeId.ML_KEM_512,
    "mlkem768": KeId.ML_KEM_768,
    "mlkem1024": KeId.ML_KEM_1024,
}

_ESN: dict[str, EsnId] = {"esn": EsnId.EXTENDED_SEQUENCE_NUMBERS, "noesn": EsnId.NO_EXTENDED_SEQUENCE_NUMBERS}

LEGACY_KEYWORDS: frozenset[str] = frozenset({"modp1024", "modp1536", "sha1", "sha", "prfsha1", "3des"})
"""Keywords for algorithms RFC 8247 deprecates or keeps only for interoperability."""

AEAD_ENCR: frozenset[EncrId] = frozenset(
    {
        EncrId.ENCR_AES_GCM_8,
        EncrId.ENCR_AES_GCM_12,
        EncrId.ENCR_AES_GCM_16,
        EncrId.ENCR_AES_CCM_8,
        EncrId.ENCR_AES_CCM_12,
        EncrId.ENCR_AES_CCM_16,
        EncrId.ENCR_CHACHA20_POLY1305,
    }
)
"""Combined-mode ciphers: they take no integrity transform."""

DEFAULT_IKE_PROPOSALS = (
    "aes256gcm16-aes128gcm16-chacha20poly1305-prfsha256-prfsha384-prfsha512"
    "-x25519-ecp256-ecp384-x448-ecp521-modp3072-modp4096-modp2048,"
    "aes256-aes128-sha256-sha384-sha512-x25519-ecp256-ecp384-x448-ecp521-modp3072-modp4096-modp2048"
)
"""What the proposal ``default`` means for IKE."""

DEFAULT_ESP_PROPOSALS = "aes256gcm16-aes128gcm16-chacha20poly1305,aes256-aes128-sha256-sha384-sha512"
"""What the proposal ``default`` means for ESP (no PFS, no ESN)."""

_V = TypeVar("_V")
_T = TypeVar("_T")

_ADDKE_PREFIXES = tuple(f"ke{n}_" for n in range(1, len(ADDKE_TYPES) + 1))


def _first_names(table: Mapping[str, _V]) -> dict[_V, str]:
    names: dict[_V, str] = {}
    for name, value in table.items():
        names.setdefault(value, name)
    return names


_ENCR_NAMES = _first_names(_ENCR)
_INTEG_NAMES = _first_names(_INTEG)
_PRF_NAMES = _first_names(_PRF)
_KE_NAMES = _first_names(_KE)
_ESN_NAMES = _first_names(_ESN)

_ALL_KEYWORDS: tuple[str, ...] = (
    *_ENCR,
    *_INTEG,
    *_PRF,
    *_KE,
    *_ESN,
    *(p + k for p in _ADDKE_PREFIXES for k in (*_KE, "none")),
)


def _unknown(keyword: str, proposal: str) -> ConfigError:
    close = difflib.get_close_matches(keyword, _ALL_KEYWORDS, n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
    return ConfigError(f"unknown algorithm keyword {keyword!r} in proposal {proposal!r}{hint}")


def _add(items: list[_T], value: _T, keyword: str, proposal: str) -> None:
    if value in items:
        raise ConfigError(f"algorithm {keyword!r} listed twice in proposal {proposal!r}")
    items.append(value)


def _parse_one(text: str, protocol: ProtocolId, allow_legacy: bool) -> ProposalSpec:
    encr: list[EncrAlg] = []
    integ: list[IntegId] = []
    prf: list[PrfId] = []
    ke: list[KeId] = []
    esn: list[EsnId] = []
    addke: list[list[KeId]] = [[] for _ in ADDKE_TYPES]
    for raw in text.split("-"):
        kw = raw.strip().lower()
        if not kw:
            raise ConfigError(f"empty algorithm keyword in proposal {text!r}")
        if kw in LEGACY_KEYWORDS and not allow_legacy:
            raise ConfigError(
                f"{kw!r} in proposal {text!r} is a legacy algorithm (RFC 8247); "
                "set allow_legacy = true to accept it"
            )
        if kw in _ENCR:
            _add(encr, _ENCR[kw], kw, text)
        elif kw in _INTEG:
            _add(integ, _INTEG[kw], kw, text)
        elif kw in _PRF:
            _add(prf, _PRF[kw], kw, text)
        elif kw in _KE:
            _add(ke, _KE[kw], kw, text)
        elif kw in _ESN:
            _add(esn, _ESN[kw], kw, text)
        elif kw.startswith(_ADDKE_PREFIXES):
            index = int(kw[2]) - 1
            method = kw[4:]
            if method == "none":
                _add(addke[index], KeId.NONE, kw, text)
            elif method in _KE:
                if method in LEGACY_KEYWORDS and not allow_legacy:
                    raise ConfigError(
                        f"{kw!r} in proposal {text!r} is a legacy algorithm (RFC 8247); "
                        "set allow_legacy = true to accept it"
                    )
                _add(addke[index], _KE[method], kw, text)
            else:
                raise _unknown(kw, text)
        else:
            raise _unknown(kw, text)

    if not encr:
        raise ConfigError(f"proposal {text!r} has no encryption algorithm")
    aead = [e for e in encr if e[0] in AEAD_ENCR]
    if aead and len(aead) != len(encr):
        raise ConfigError(f"proposal {text!r} mixes AEAD and non-AEAD encryption; use two proposals")
    if aead and integ:
        raise ConfigError(f"proposal {text!r}: an AEAD cipher takes no integrity algorithm")
    if not aead and not integ:
        raise ConfigError(f"proposal {text!r} needs an integrity algorithm (e.g. sha256)")
    while addke and not addke[-1]:
        addke.pop()

    if protocol == ProtocolId.IKE:
        if esn:
            raise ConfigError(f"proposal {text!r}: esn/noesn apply to ESP proposals only")
        if not ke:
            raise ConfigError(f"IKE proposal {text!r} needs a key exchange method (e.g. x25519)")
        if not prf:
            if aead:
                raise ConfigError(f"AEAD IKE proposal {text!r} needs a PRF keyword (e.g. prfsha256)")
            for i in integ:
                derived = _PRF_FOR_INTEG[i]
                if derived not in prf:
                    prf.append(derived)
    else:
        if prf:
            raise ConfigError(f"proposal {text!r}: PRF keywords apply to IKE proposals only")
        if not esn:
            esn.append(EsnId.NO_EXTENDED_SEQUENCE_NUMBERS)

    return ProposalSpec(
        protocol=protocol,
        encr=tuple(encr),
        prf=tuple(prf),
        integ=tuple(integ),
        ke=tuple(ke),
        esn=tuple(esn),
        addke=tuple(tuple(a) for a in addke),
    )


def parse_proposals(
    text: str, *, protocol: ProtocolId, allow_legacy: bool = False
) -> tuple[ProposalSpec, ...]:
    """Parse comma-separated proposals for ``protocol`` (IKE or ESP); ConfigError names the fault."""
    if protocol not in (ProtocolId.IKE, ProtocolId.ESP):
        raise ValueError(f"proposals for {protocol!r} are not supported (IKE or ESP only)")
    specs: list[ProposalSpec] = []
    parts = [p.strip() for p in text.split(",")]
    if not any(parts):
        raise ConfigError("empty proposal list")
    for part in parts:
        if not part:
            raise ConfigError(f"empty proposal in {text!r}")
        if part.lower() == "default":
            default = DEFAULT_IKE_PROPOSALS if protocol == ProtocolId.IKE else DEFAULT_ESP_PROPOSALS
            specs += (_parse_one(p, protocol, True) for p in default.split(","))
        else:
            specs.append(_parse_one(part, protocol, allow_legacy))
    return tuple(specs)


def _name(names: Mapping[_V, str], value: _V, fallback: str) -> str:
    return names.get(value, fallback)


def format_proposal(spec: ProposalSpec) -> str:
    """The canonical keywords of ``spec`` (PRFs implied by the integrity algorithms and the
    ESP default ``noesn`` are left out). Algorithms without a keyword print as IANA names."""
    words: list[str] = []
    for e, bits in spec.encr:
        fallback = e.name.lower() + ("" if bits is None else f"_{bits}")
        words.append(_name(_ENCR_NAMES, (e, bits), fallback))
    words += (_name(_INTEG_NAMES, i, i.name.lower()) for i in spec.integ)
    implied: list[PrfId] = []
    for i in spec.integ:
        derived = _PRF_FOR_INTEG.get(i)
        if derived is not None and derived not in implied:
            implied.append(derived)
    if spec.protocol != ProtocolId.IKE or list(spec.prf) != implied:
        words += (_name(_PRF_NAMES, p, p.name.lower()) for p in spec.prf)
    words += (_name(_KE_NAMES, k, k.name.lower()) for k in spec.ke)
    for n, ids in enumerate(spec.addke, start=1):
        words += (
            f"ke{n}_" + ("none" if k == KeId.NONE else _name(_KE_NAMES, k, k.name.lower())) for k in ids
        )
    if not (spec.protocol == ProtocolId.ESP and spec.esn == (EsnId.NO_EXTENDED_SEQUENCE_NUMBERS,)):
        words += (_name(_ESN_NAMES, e, e.name.lower()) for e in spec.esn)
    return "-".join(words)


def format_chosen(chosen: ChosenProposal) -> str:
    """The keywords of a negotiated proposal (one algorithm per transform type)."""
    return format_proposal(chosen.to_spec())
