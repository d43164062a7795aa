"""Proposal model, wire conversion and selection (RFC 7296 §2.7, §3.3)."""

from __future__ import annotations

from pyipsec.iana.ikev2 import ProtocolId
from pyipsec.iana.transforms import EncrId, EsnId, IntegId, KeId, PrfId, TransformType
from pyipsec.ike.proposal import ChosenProposal, ProposalSpec, select
from pyipsec.wire.buffer import Reader
from pyipsec.wire.payloads.sa import Proposal, SecurityAssociation, Transform

IKE, ESP = ProtocolId.IKE, ProtocolId.ESP
GCM256 = (EncrId.ENCR_AES_GCM_16, 256)
GCM128 = (EncrId.ENCR_AES_GCM_16, 128)
CBC256 = (EncrId.ENCR_AES_CBC, 256)
CBC128 = (EncrId.ENCR_AES_CBC, 128)
CHACHA = (EncrId.ENCR_CHACHA20_POLY1305, None)
SHA256 = IntegId.AUTH_HMAC_SHA2_256_128
PRF256, PRF384 = PrfId.PRF_HMAC_SHA2_256, PrfId.PRF_HMAC_SHA2_384
NO_ESN, ESN = EsnId.NO_EXTENDED_SEQUENCE_NUMBERS, EsnId.EXTENDED_SEQUENCE_NUMBERS
SPI = bytes.fromhex("c42fce49")


def ike(*encr: tuple[EncrId, int | None], prf: tuple[PrfId, ...] = (PRF256,), **kw: object) -> ProposalSpec:
    return ProposalSpec(IKE, encr=encr, prf=prf, **kw)  # type: ignore[arg-type]


def esp(*encr: tuple[EncrId, int | None], **kw: object) -> ProposalSpec:
    kw.setdefault("esn", (NO_ESN,))
    return ProposalSpec(ESP, encr=encr, **kw)  # type: ignore[arg-type]


def offer(*specs: ProposalSpec, spi: bytes | None = None) -> list[Proposal]:
    def spi_for(s: ProposalSpec) -> bytes:
        return spi if spi is not None else SPI if s.protocol == ESP else b""

    return [s.to_wire(i + 1, spi_for(s)) for i, s in enumerate(specs)]


# --- model and wire conversion --------------------------------------------------------------


def test_to_wire_lists_transforms_by_type_with_key_length() -> None:
    spec = ProposalSpec(
        IKE, encr=(CBC256, CBC128), prf=(PRF384,), integ=(SHA256,), ke=(KeId.CURVE25519, KeId.ECP_256)
    )
    wire = spec.to_wire(3)
    assert (wire.number, wire.protocol, wire.spi) == (3, IKE, b"")
    assert [(t.transform_type, t.transform_id, t.key_length) for t in wire.transforms] == [
        (TransformType.ENCR, EncrId.ENCR_AES_CBC, 256),
        (TransformType.ENCR, EncrId.ENCR_AES_CBC, 128),
        (TransformType.PRF, PRF384, None),
        (TransformType.INTEG, SHA256, None),
        (TransformType.KE, KeId.CURVE25519, None),
        (TransformType.KE, KeId.ECP_256, None),
    ]


def test_wire_round_trip_through_sa_payload_codec() -> None:
    spec = esp(GCM256, CHACHA, ke=(KeId.NONE, KeId.CURVE25519), esn=(ESN, NO_ESN))
    body = SecurityAssociation((spec.to_wire(1, SPI),)).encode_body()
    decoded = SecurityAssociation.decode_body(
        SecurityAssociation((spec.to_wire(1, SPI),)).payload_type, Reader(body)
    )
    assert ProposalSpec.from_wire(decoded.proposals[0]) == spec


def test_additional_key_exchanges_map_to_addke_types() -> None:
    spec = ike(GCM256, ke=(KeId.CURVE25519,), addke=((KeId.ML_KEM_768,), (), (KeId.ML_KEM_1024, KeId.NONE)))
    wire = spec.to_wire(1)
    assert wire.transforms_of(TransformType.ADDKE1)[0].transform_id == KeId.ML_KEM_768
    assert wire.transforms_of(TransformType.ADDKE2) == ()
    assert [t.transform_id for t in wire.transforms_of(TransformType.ADDKE3)] == [KeId.ML_KEM_1024, KeId.NONE]
    assert ProposalSpec.from_wire(wire) == spec


# --- selection ----------------------------------------------------------------------------------


def test_our_order_wins_over_the_peers() -> None:
    local = [ike(GCM256, ke=(KeId.ECP_256,)), ike(CBC256, integ=(SHA256,), ke=(KeId.MODP_2048,))]
    offered = offer(
        ike(CBC256, integ=(SHA256,), ke=(KeId.MODP_2048,)), ike(GCM128, GCM256, ke=(KeId.ECP_256,))
    )
    chosen = select(local, offered)
    assert chosen is not None
    assert chosen.number == 2  # the peer's number for its second proposal
    assert chosen.encr == GCM256


def test_within_a_proposal_our_algorithm_order_wins() -> None:
    local = [ike(GCM256, GCM128, prf=(PRF384, PRF256), ke=(KeId.CURVE25519, KeId.ECP_256))]
    offered = offer(ike(GCM128, GCM256, prf=(PRF256, PRF384), ke=(KeId.ECP_256, KeId.CURVE25519)))
    chosen = select(local, offered)
    assert chosen == ChosenProposal(1, IKE, b"", GCM256, prf=PRF384, ke=KeId.CURVE25519)


def test_chosen_has_one_transform_per_type_and_our_spi() -> None:
    local = [esp(CBC256, CBC128, integ=(SHA256, IntegId.AUTH_HMAC_SHA2_512_256))]
    offered = offer(esp(CBC128, CBC256, integ=(IntegId.AUTH_HMAC_SHA2_512_256, SHA256)), spi=SPI)
    chosen = select(local, offered)
    assert chosen is not None
    assert chosen.spi == SPI
    wire = chosen.to_wire(b"\x11\x22\x33\x44")
    types = [t.transform_type for t in wire.transforms]
    assert types == [TransformType.ENCR, TransformType.INTEG, TransformType.ESN]
    assert wire.spi == b"\x11\x22\x33\x44"
    assert wire.number == 1
    assert chosen.to_wire().spi == SPI
    assert chosen.to_spec() == esp(CBC256, integ=(SHA256,))


def test_no_match_returns_none() -> None:
    local = [ike(GCM256, ke=(KeId.ECP_384,))]
    assert select(local, offer(ike(GCM256, ke=(KeId.ECP_256,)))) is None
    assert select(local, offer(ike(GCM256, prf=(PRF384,), ke=(KeId.ECP_384,)))) is None
    assert select(local, offer(esp(GCM256))) is None  # protocol differs
    assert select([], offer(ike(GCM256, ke=(KeId.ECP_384,)))) is None
    assert select(local, []) is None


def test_key_length_must_match() -> None:
    local = [esp(CBC256, integ=(SHA256,))]
    assert select(local, offer(esp(CBC128, integ=(SHA256,)))) is None
    assert select(local, offer(esp((EncrId.ENCR_AES_CBC, None), integ=(SHA256,)))) is None
    assert select([esp(GCM128)], offer(esp(GCM256))) is None
    chosen = select([esp(CBC128, CBC256, integ=(SHA256,))], offer(esp(CBC256, integ=(SHA256,))))
    assert chosen is not None and chosen.encr == CBC256


def test_esn_negotiation() -> None:
    both, only_esn, only_no = (ESN, NO_ESN), (ESN,), (NO_ESN,)
    chosen = select([esp(GCM256, esn=only_no)], offer(esp(GCM256, esn=both)))
    assert chosen is not None and chosen.esn == NO_ESN and not chosen.esn_enabled
    chosen = select([esp(GCM256, esn=both)], offer(esp(GCM256, esn=(NO_ESN, ESN))))
    assert chosen is not None and chosen.esn == ESN and chosen.esn_enabled  # our preference
    assert select([esp(GCM256, esn=only_no)], offer(esp(GCM256, esn=only_esn))) is None
    assert select([esp(GCM256, esn=only_esn)], offer(esp(GCM256, esn=only_no))) is None
    # a peer leaving ESN out means "no ESN"; nothing is echoed back
    chosen = select([esp(GCM256, esn=only_no)], offer(esp(GCM256, esn=())))
    assert chosen is not None and chosen.esn is None
    assert select([esp(GCM256, esn=only_esn)], offer(esp(GCM256, esn=()))) is None


def test_aead_matches_with_absent_or_none_integrity() -> None:
    chosen = select([esp(GCM256)], offer(esp(GCM256, integ=(IntegId.NONE,))))
    assert chosen is not None and chosen.integ == IntegId.NONE  # an explicit NONE is echoed
    chosen = select([esp(GCM256)], offer(esp(GCM256)))
    assert chosen is not None and chosen.integ is None
    assert select([esp(GCM256)], offer(esp(GCM256, integ=(SHA256,)))) is None
    assert select([esp(CBC256, integ=(SHA256,))], offer(esp(CBC256))) is None


def test_pfs_key_exchange_in_child_proposals() -> None:
    no_pfs, pfs = esp(GCM256), esp(GCM256, ke=(KeId.CURVE25519,))
    assert select([no_pfs], offer(pfs)) is None  # the peer insists on PFS
    assert select([pfs], offer(no_pfs)) is None  # we insist on PFS
    chosen = select([no_pfs], offer(esp(GCM256, ke=(KeId.CURVE25519, KeId.NONE))))
    assert chosen is not None and chosen.ke == KeId.NONE
    optional = esp(GCM256, ke=(KeId.CURVE25519, KeId.NONE))
    chosen = select([optional], offer(no_pfs))
    assert chosen is not None and chosen.ke is None
    chosen = select([optional], offer(pfs))
    assert chosen is not None and chosen.ke == KeId.CURVE25519


def test_ignore_ke_for_the_child_sa_in_ike_auth() -> None:
    # strongSwan lists its PFS groups even in IKE_AUTH, where no KE payload exists (RFC 7296 §1.2)
    offered = offer(esp(GCM256, ke=(KeId.CURVE25519,)), spi=SPI)
    assert select([esp(GCM256)], offered) is None
    chosen = select([esp(GCM256)], offered, ignore_ke=True)
    assert chosen is not None and chosen.ke is None
    assert TransformType.KE not in {t.transform_type for t in chosen.to_wire(SPI).transforms}


def test_additional_key_exchanges_are_selected_per_type() -> None:
    local = [ike(GCM256, ke=(KeId.CURVE25519,), addke=((KeId.ML_KEM_768, KeId.ML_KEM_1024),))]
    offered = offer(ike(GCM256, ke=(KeId.CURVE25519,), addke=((KeId.ML_KEM_1024, KeId.ML_KEM_768),)))
    chosen = select(local, offered)
    assert chosen is not None and chosen.addke == (KeId.ML_KEM_768,)
    assert chosen.additional_kes == (KeId.ML_KEM_768,)
    # the peer requires ADDKE1, we have none
    assert select([ike(GCM256, ke=(KeId.CURVE25519,))], offered) is None
    # the peer makes it optional
    optional = offer(ike(GCM256, ke=(KeId.CURVE25519,), addke=((KeId.ML_KEM_768, KeId.NONE),)))
    chosen = select([ike(GCM256, ke=(KeId.CURVE25519,))], optional)
    assert chosen is not None and chosen.addke == (KeId.NONE,) and chosen.additional_kes == ()


def test_unknown_transform_type_makes_a_proposal_unacceptable() -> None:
    good = ike(GCM256, ke=(KeId.ECP_256,)).to_wire(1)
    weird = Proposal(1, IKE, transforms=(*good.transforms, Transform(TransformType(200), 1)))
    assert select([ike(GCM256, ke=(KeId.ECP_256,))], [weird]) is None
    assert select(
        [ike(GCM256, ke=(KeId.ECP_256,))], [weird, Proposal(2, IKE, transforms=good.transforms)]
    ) == (ChosenProposal(2, IKE, b"", GCM256, prf=PRF256, ke=KeId.ECP_256))


def test_unknown_algorithm_ids_are_skipped_not_fatal() -> None:
    offered = [
        Proposal(
            1,
            IKE,
            transforms=(
                Transform(TransformType.ENCR, 1024, key_length=256),
                Transform(TransformType.ENCR, EncrId.ENCR_AES_GCM_16, key_length=256),
                Transform(TransformType.PRF, PRF256),
                Transform(TransformType.KE, 4000),
                Transform(TransformType.KE, KeId.CURVE25519),
            ),
        )
    ]
    chosen = select([ike(GCM256, ke=(KeId.CURVE25519,))], offered)
    assert chosen is not None and chosen.ke == KeId.CURVE25519


def test_str_is_strongswans_log_notation() -> None:
    spec = ProposalSpec(
        IKE,
        encr=(CBC256, CHACHA),
        prf=(PRF256,),
        integ=(SHA256,),
        ke=(KeId.CURVE25519, KeId.MODP_2048),
        addke=((KeId.ML_KEM_768,),),
    )
    assert str(spec) == (
        "AES_CBC_256/CHACHA20_POLY1305/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/CURVE_25519/MODP_2048/KE1_ML_KEM_768"
    )
    chosen = ChosenProposal(1, ESP, SPI, GCM128, integ=IntegId.NONE, ke=KeId.NONE, esn=NO_ESN)
    assert str(chosen) == "AES_GCM_16_128/NO_EXT_SEQ"
