"""Proposal model and selection, independent of the SA payload's wire format.

Theory of operation: a :class:`ProposalSpec` is what we are willing to use — for each
transform type the acceptable algorithms in *our* order of preference. It converts to and
from the wire :class:`~pyipsec.wire.payloads.sa.Proposal` (whose transforms of one type are
alternatives, RFC 7296 §3.3). :func:`select` is the responder's choice (RFC 7296 §2.7):
walk our proposals in order; for each, the peer's proposals in their order; the first peer
proposal that offers an acceptable algorithm of every transform type wins, and for each type
we take the first of *our* algorithms that the peer offered. The result, a
:class:`ChosenProposal`, has exactly one transform per type and keeps the peer's proposal
number and SPI (RFC 7296 §3.3.1); ``to_wire(spi)`` gives the proposal for our reply with our
SPI.

"No transform of a type" and "the NONE transform of that type" are treated alike for the
types that have a NONE value (integrity, key exchange, additional key exchanges, ESN): an
AEAD proposal without an integrity transform matches one that lists INTEG NONE (RFC 7296
§3.3.3), an ESP proposal without PFS matches one offering KE NONE, and an ESP proposal
without an ESN transform is read as "no ESN". A NONE transform the peer listed explicitly
is echoed back; an absent one stays absent. A peer proposal holding a transform type we
do not know is unacceptable (RFC 7296 §3.3.6).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from pyipsec.iana.ikev2 import ProtocolId
from pyipsec.iana.transforms import EncrId, EsnId, IntegId, KeId, PrfId, TransformType
from pyipsec.wire.payloads.sa import Proposal, Transform

__all__ = ["ADDKE_TYPES", "ChosenProposal", "EncrAlg", "ProposalSpec", "select"]

EncrAlg = tuple[EncrId, int | None]
"""An encryption algorithm and its key length in bits (None: the transform has no Key Length)."""

ADDKE_TYPES: tuple[TransformType, ...] = (
    TransformType.ADDKE1,
    TransformType.ADDKE2,
    TransformType.ADDKE3,
    TransformType.ADDKE4,
    TransformType.ADDKE5,
    TransformType.ADDKE6,
    TransformType.ADDKE7,
)
"""Additional Key Exchange transform types 1-7 (RFC 9370 §2.2.1), in order."""

_KNOWN_TYPES = frozenset(
    {
        TransformType.ENCR,
        TransformType.PRF,
        TransformType.INTEG,
        TransformType.KE,
        TransformType.ESN,
        *ADDKE_TYPES,
    }
)


_KE_LOG_NAMES = {KeId.CURVE25519: "CURVE_25519", KeId.CURVE448: "CURVE_448"}
_ESN_LOG_NAMES = {
    EsnId.NO_EXTENDED_SEQUENCE_NUMBERS: "NO_EXT_SEQ",
    EsnId.EXTENDED_SEQUENCE_NUMBERS: "EXT_SEQ",
}


def _describe(
    encr: Sequence[EncrAlg],
    integ: Sequence[IntegId],
    prf: Sequence[PrfId],
    ke: Sequence[KeId],
    esn: Sequence[EsnId],
    addke: Sequence[Sequence[KeId]],
) -> str:
    """Algorithm names the way strongSwan logs a proposal, e.g. ``AES_CBC_256/HMAC_SHA2_256_128/
    PRF_HMAC_SHA2_256/CURVE_25519`` (encryption, integrity, PRF, key exchange, ESN)."""
    names = [e.name.removeprefix("ENCR_") + ("" if bits is None else f"_{bits}") for e, bits in encr]
    names += (i.name.removeprefix("AUTH_") for i in integ)
    names += (p.name for p in prf)
    names += (_KE_LOG_NAMES.get(k, k.name) for k in ke)
    names += (_ESN_LOG_NAMES.get(e, e.name) for e in esn)
    for n, ids in enumerate(addke, start=1):
        names += (f"KE{n}_" + _KE_LOG_NAMES.get(k, k.name) for k in ids)
    return "/".join(names)


@dataclass(frozen=True, slots=True)
class ProposalSpec:
    """Acceptable algorithms per transform type, each tuple in our order of preference.

    ``addke[i]`` lists the acceptable methods for ADDKE(i+1) (RFC 9370); include
    ``KeId.NONE`` there to make that additional exchange optional. ``esn`` is empty for IKE.
    """

    protocol: ProtocolId
    encr: tuple[EncrAlg, ...] = ()
    prf: tuple[PrfId, ...] = ()
    integ: tuple[IntegId, ...] = ()
    ke: tuple[KeId, ...] = ()
    esn: tuple[EsnId, ...] = ()
    addke: tuple[tuple[KeId, ...], ...] = ()

    def __post_init__(self) -> None:
        if len(self.addke) > len(ADDKE_TYPES):
            raise ValueError(f"at most {len(ADDKE_TYPES)} additional key exchanges (RFC 9370)")

    def __str__(self) -> str:
        """strongSwan's log notation (IANA-style names joined by ``/``); see ``ike.proposal_text``
        for the configuration keywords."""
        return _describe(self.encr, self.integ, self.prf, self.ke, self.esn, self.addke)

    def transforms(self) -> tuple[Transform, ...]:
        """All transforms, grouped by type in RFC 7296 §3.3 order (ENCR, PRF, INTEG, KE, ESN, ADDKE*)."""
        out: list[Transform] = [Transform(TransformType.ENCR, int(e), key_length=kl) for e, kl in self.encr]
        out += [Transform(TransformType.PRF, int(p)) for p in self.prf]
        out += [Transform(TransformType.INTEG, int(i)) for i in self.integ]
        out += [Transform(TransformType.KE, int(k)) for k in self.ke]
        out += [Transform(TransformType.ESN, int(e)) for e in self.esn]
        for ttype, ids in zip(ADDKE_TYPES, self.addke, strict=False):
            out += [Transform(ttype, int(k)) for k in ids]
        return tuple(out)

    def to_wire(self, number: int, spi: bytes = b"") -> Proposal:
        """The wire proposal offering every algorithm of this spec."""
        return Proposal(number, self.protocol, spi=spi, transforms=self.transforms())

    @classmethod
    def from_wire(cls, proposal: Proposal) -> ProposalSpec:
        """The spec a peer's wire proposal offers (transform order within each type kept).

        Transform types we do not know are dropped; use :func:`select` to judge a proposal.
        """
        by_type = _group(proposal)
        addke: list[tuple[KeId, ...]] = []
        for ttype in ADDKE_TYPES:
            addke.append(tuple(KeId(t.transform_id) for t in by_type.get(ttype, ())))
        while addke and not addke[-1]:
            addke.pop()
        return cls(
            protocol=ProtocolId(proposal.protocol),
            encr=tuple((EncrId(t.transform_id), t.key_length) for t in by_type.get(TransformType.ENCR, ())),
            prf=tuple(PrfId(t.transform_id) for t in by_type.get(TransformType.PRF, ())),
            integ=tuple(IntegId(t.transform_id) for t in by_type.get(TransformType.INTEG, ())),
            ke=tuple(KeId(t.transform_id) for t in by_type.get(TransformType.KE, ())),
            esn=tuple(EsnId(t.transform_id) for t in by_type.get(TransformType.ESN, ())),
            addke=tuple(addke),
        )


@dataclass(frozen=True, slots=True)
class ChosenProposal:
    """One transform per type, as selected; None means "no transform of this type"."""

    number: int
    protocol: ProtocolId
    spi: bytes
    encr: EncrAlg | None
    prf: PrfId | None = None
    integ: IntegId | None = None
    ke: KeId | None = None
    esn: EsnId | None = None
    addke: tuple[KeId | None, ...] = ()

    def __str__(self) -> str:
        """strongSwan's log notation, e.g. ``AES_GCM_16_256/PRF_HMAC_SHA2_256/ECP_256``."""
        return _describe(
            () if self.encr is None else (self.encr,),
            () if self.integ is None or self.integ == IntegId.NONE else (self.integ,),
            () if self.prf is None else (self.prf,),
            () if self.ke is None or self.ke == KeId.NONE else (self.ke,),
            () if self.esn is None else (self.esn,),
            [() if k is None or k == KeId.NONE else (k,) for k in self.addke],
        )

    @property
    def esn_enabled(self) -> bool:
        return self.esn == EsnId.EXTENDED_SEQUENCE_NUMBERS

    @property
    def additional_kes(self) -> tuple[KeId, ...]:
        """The additional key exchanges to run, in ADDKE order (NONE and absent ones skipped)."""
        return tuple(k for k in self.addke if k is not None and k != KeId.NONE)

    def transforms(self) -> tuple[Transform, ...]:
        out: list[Transform] = []
        if self.encr is not None:
            out.append(Transform(TransformType.ENCR, int(self.encr[0]), key_length=self.encr[1]))
        if self.prf is not None:
            out.append(Transform(TransformType.PRF, int(self.prf)))
        if self.integ is not None:
            out.append(Transform(TransformType.INTEG, int(self.integ)))
        if self.ke is not None:
            out.append(Transform(TransformType.KE, int(self.ke)))
        if self.esn is not None:
            out.append(Transform(TransformType.ESN, int(self.esn)))
        for ttype, k in zip(ADDKE_TYPES, self.addke, strict=False):
            if k is not None:
                out.append(Transform(ttype, int(k)))
        return tuple(out)

    def to_wire(self, spi: bytes | None = None) -> Proposal:
        """The proposal for our reply: the peer's number, with ``spi`` (default: the peer's SPI)."""
        return Proposal(
            self.number, self.protocol, spi=self.spi if spi is None else spi, transforms=self.transforms()
        )

    def to_spec(self) -> ProposalSpec:
        """A spec accepting exactly this choice (e.g. to check a responder's reply)."""
        return ProposalSpec(
            protocol=self.protocol,
            encr=() if self.encr is None else (self.encr,),
            prf=() if self.prf is None else (self.prf,),
            integ=() if self.integ is None else (self.integ,),
            ke=() if self.ke is None else (self.ke,),
            esn=() if self.esn is None else (self.esn,),
            addke=tuple(() if k is None else (k,) for k in self.addke),
        )


def _group(proposal: Proposal) -> dict[TransformType, list[Transform]]:
    by_type: dict[TransformType, list[Transform]] = {}
    for t in proposal.transforms:
        by_type.setdefault(TransformType(t.transform_type), []).append(t)
    return by_type


def _pick_optional(local: Sequence[int], offered: Sequence[int]) -> tuple[bool, int | None]:
    """Choose for a type whose value 0 means NONE; absent on either side counts as NONE.

    Returns (matched, chosen id), the id None when the reply carries no transform of the type.
    """
    for v in local or (0,):
        if v in offered:
            return True, v
        if v == 0 and not offered:
            return True, None
    return False, None


def _match(spec: ProposalSpec, offered: Proposal, ignore_ke: bool) -> ChosenProposal | None:
    if spec.protocol != offered.protocol:
        return None
    by_type = _group(offered)
    if any(not t.is_assigned or t not in _KNOWN_TYPES for t in by_type):
        return None  # RFC 7296 §3.3.6: an unknown transform type makes the proposal unacceptable
    if ignore_ke:
        spec = replace(spec, ke=(), addke=())
        for ttype in (TransformType.KE, *ADDKE_TYPES):
            by_type.pop(ttype, None)

    def ids(ttype: TransformType) -> list[int]:
        return [int(t.transform_id) for t in by_type.get(ttype, ())]

    offered_encr = [(int(t.transform_id), t.key_length) for t in by_type.get(TransformType.ENCR, ())]
    encr = next(((e, kl) for e, kl in spec.encr if (int(e), kl) in offered_encr), None)
    if encr is None and (spec.encr or offered_encr):
        return None

    offered_prf = ids(TransformType.PRF)
    prf = next((p for p in spec.prf if int(p) in offered_prf), None)
    if prf is None and (spec.prf or offered_prf):
        return None

    ok_i, integ = _pick_optional([int(i) for i in spec.integ], ids(TransformType.INTEG))
    ok_k, ke = _pick_optional([int(k) for k in spec.ke], ids(TransformType.KE))
    ok_e, esn = _pick_optional([int(e) for e in spec.esn], ids(TransformType.ESN))
    if not (ok_i and ok_k and ok_e):
        return None
    addke: list[KeId | None] = []
    for n, ttype in enumerate(ADDKE_TYPES):
        local = [int(k) for k in spec.addke[n]] if n < len(spec.addke) else []
        ok, got = _pick_optional(local, ids(ttype))
        if not ok:
            return None
        addke.append(None if got is None else KeId(got))
    while addke and addke[-1] is None:
        addke.pop()

    return ChosenProposal(
        number=offered.number,
        protocol=spec.protocol,
        spi=offered.spi,
        encr=encr,
        prf=prf,
        integ=None if integ is None else IntegId(integ),
        ke=None if ke is None else KeId(ke),
        esn=None if esn is None else EsnId(esn),
        addke=tuple(addke),
    )


def select(
    local: Sequence[ProposalSpec], offered: Sequence[Proposal], *, ignore_ke: bool = False
) -> ChosenProposal | None:
    """Pick the first acceptable combination, our proposals' order first (RFC 7296 §2.7).

    None when nothing matches (the caller answers NO_PROPOSAL_CHOSEN). ``ignore_ke`` drops
    the key-exchange transforms on both sides, for the Child SA negotiated inside IKE_AUTH,
    which has no KE payload (RFC 7296 §1.2).
    """
    for spec in local:
        for proposal in offered:
            chosen = _match(spec, proposal, ignore_ke)
            if chosen is not None:
                return chosen
    return None
