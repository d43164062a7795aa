"""strongSwan-style proposal keywords: parsing, rules, canonical printing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyipsec.errors import ConfigError
from pyipsec.iana.ikev2 import ProtocolId
from pyipsec.iana.transforms import EncrId, EsnId, IntegId, KeId, PrfId
from pyipsec.ike.proposal import ProposalSpec
from pyipsec.ike.proposal_text import (
    DEFAULT_ESP_PROPOSALS,
    DEFAULT_IKE_PROPOSALS,
    LEGACY_KEYWORDS,
    format_proposal,
    parse_proposals,
)

IKE, ESP = ProtocolId.IKE, ProtocolId.ESP
NO_ESN, ESN = EsnId.NO_EXTENDED_SEQUENCE_NUMBERS, EsnId.EXTENDED_SEQUENCE_NUMBERS


def one(text: str, protocol: ProtocolId = IKE, *, allow_legacy: bool = False) -> ProposalSpec:
    (spec,) = parse_proposals(text, protocol=protocol, allow_legacy=allow_legacy)
    return spec


@pytest.mark.parametrize(
    ("keyword", "expected"),
    [
        ("aes128", (EncrId.ENCR_AES_CBC, 128)),
        ("aes192", (EncrId.ENCR_AES_CBC, 192)),
        ("aes256", (EncrId.ENCR_AES_CBC, 256)),
        ("aes", (EncrId.ENCR_AES_CBC, 128)),
        ("aes128ctr", (EncrId.ENCR_AES_CTR, 128)),
        ("aes256ctr", (EncrId.ENCR_AES_CTR, 256)),
        ("3des", (EncrId.ENCR_3DES, None)),
    ],
)
def test_classic_encryption_keywords(keyword: str, expected: tuple[EncrId, int | None]) -> None:
    spec = one(f"{keyword}-sha256-x25519", allow_legacy=True)
    assert spec.encr == (expected,)


@pytest.mark.parametrize("bits", [128, 192, 256])
@pytest.mark.parametrize(
    ("suffix", "encr"),
    [
        ("gcm16", EncrId.ENCR_AES_GCM_16),
        ("gcm12", EncrId.ENCR_AES_GCM_12),
        ("gcm8", EncrId.ENCR_AES_GCM_8),
        ("gcm128", EncrId.ENCR_AES_GCM_16),
        ("gcm64", EncrId.ENCR_AES_GCM_8),
        ("ccm16", EncrId.ENCR_AES_CCM_16),
        ("ccm12", EncrId.ENCR_AES_CCM_12),
        ("ccm8", EncrId.ENCR_AES_CCM_8),
        ("ccm96", EncrId.ENCR_AES_CCM_12),
    ],
)
def test_aead_keywords(bits: int, suffix: str, encr: EncrId) -> None:
    spec = one(f"aes{bits}{suffix}", ESP)
    assert spec.encr == ((encr, bits),)
    assert spec.integ == ()


def test_chacha20poly1305_has_no_key_length() -> None:
    assert one("chacha20poly1305-prfsha256-x25519").encr == ((EncrId.ENCR_CHACHA20_POLY1305, None),)


@pytest.mark.parametrize(
    ("keyword", "integ", "prf"),
    [
        ("sha1", IntegId.AUTH_HMAC_SHA1_96, PrfId.PRF_HMAC_SHA1),
        ("sha256", IntegId.AUTH_HMAC_SHA2_256_128, PrfId.PRF_HMAC_SHA2_256),
        ("sha384", IntegId.AUTH_HMAC_SHA2_384_192, PrfId.PRF_HMAC_SHA2_384),
        ("sha512", IntegId.AUTH_HMAC_SHA2_512_256, PrfId.PRF_HMAC_SHA2_512),
        ("aesxcbc", IntegId.AUTH_AES_XCBC_96, PrfId.PRF_AES128_XCBC),
        ("aescmac", IntegId.AUTH_AES_CMAC_96, PrfId.PRF_AES128_CMAC),
    ],
)
def test_integrity_keywords_and_derived_prf(keyword: str, integ: IntegId, prf: PrfId) -> None:
    spec = one(f"aes256-{keyword}-x25519", allow_legacy=True)
    assert spec.integ == (integ,)
    assert spec.prf == (prf,)  # IKE without prf*: PRFs follow the integrity algorithms
    assert format_proposal(spec) == f"aes256-{keyword}-x25519"


@pytest.mark.parametrize(
    ("keyword", "prf"),
    [
        ("prfsha1", PrfId.PRF_HMAC_SHA1),
        ("prfsha256", PrfId.PRF_HMAC_SHA2_256),
        ("prfsha384", PrfId.PRF_HMAC_SHA2_384),
        ("prfsha512", PrfId.PRF_HMAC_SHA2_512),
        ("prfaesxcbc", PrfId.PRF_AES128_XCBC),
        ("prfaescmac", PrfId.PRF_AES128_CMAC),
    ],
)
def test_prf_keywords(keyword: str, prf: PrfId) -> None:
    spec = one(f"aes128gcm16-{keyword}-ecp256", allow_legacy=True)
    assert spec.prf == (prf,)
    assert format_proposal(spec) == f"aes128gcm16-{keyword}-ecp256"


@pytest.mark.parametrize(
    ("keyword", "ke"),
    [
        ("modp1024", KeId.MODP_1024),
        ("modp1536", KeId.MODP_1536),
        ("modp2048", KeId.MODP_2048),
        ("modp3072", KeId.MODP_3072),
        ("modp4096", KeId.MODP_4096),
        ("modp6144", KeId.MODP_6144),
        ("modp8192", KeId.MODP_8192),
        ("ecp256", KeId.ECP_256),
        ("ecp384", KeId.ECP_384),
        ("ecp521", KeId.ECP_521),
        ("x25519", KeId.CURVE25519),
        ("curve25519", KeId.CURVE25519),
        ("x448", KeId.CURVE448),
        ("curve448", KeId.CURVE448),
        ("mlkem768", KeId.ML_KEM_768),
        ("mlkem1024", KeId.ML_KEM_1024),
    ],
)
def test_key_exchange_keywords(keyword: str, ke: KeId) -> None:
    assert one(f"aes256-sha256-{keyword}", allow_legacy=True).ke == (ke,)


def test_order_within_a_kind_is_preference_and_kinds_may_interleave() -> None:
    a = one("aes256gcm16-aes192gcm16-prfsha384-prfsha256-ecp384-modp3072")
    b = one("aes256gcm16-prfsha384-ecp384-aes192gcm16-prfsha256-modp3072")
    assert a == b
    assert a.encr == ((EncrId.ENCR_AES_GCM_16, 256), (EncrId.ENCR_AES_GCM_16, 192))
    assert a.prf == (PrfId.PRF_HMAC_SHA2_384, PrfId.PRF_HMAC_SHA2_256)
    assert a.ke == (KeId.ECP_384, KeId.MODP_3072)


def test_comma_separated_proposals_and_whitespace() -> None:
    specs = parse_proposals(" aes256gcm16-prfsha256-x25519 , aes256-sha256-modp2048 ", protocol=IKE)
    assert [format_proposal(s) for s in specs] == ["aes256gcm16-prfsha256-x25519", "aes256-sha256-modp2048"]


def test_keywords_are_case_insensitive() -> None:
    assert one("AES256GCM16-PrfSha256-X25519") == one("aes256gcm16-prfsha256-x25519")


@pytest.mark.parametrize(
    "text",
    [
        "aes256gcm16-prfsha384-ecp256",
        "aes256-sha256-modp2048",
        "chacha20poly1305-prfsha256-x25519",
        "aes128-aes256-sha256-sha512-prfsha384-ecp384-x448",
        "aes256-sha256-x25519-ke1_mlkem768-ke2_mlkem1024-ke2_none",
    ],
)
def test_canonical_ike_strings_round_trip(text: str) -> None:
    assert format_proposal(one(text)) == text


@pytest.mark.parametrize(
    "text",
    ["aes256gcm16", "aes128-sha256", "aes256gcm16-x25519", "aes256-sha256-esn", "aes256-sha256-esn-noesn"],
)
def test_canonical_esp_strings_round_trip(text: str) -> None:
    assert format_proposal(one(text, ESP)) == text


def test_aliases_print_canonically() -> None:
    assert format_proposal(one("aes128gcm128-prfsha256-curve25519")) == "aes128gcm16-prfsha256-x25519"
    assert format_proposal(one("aes-sha2_256-curve448")) == "aes128-sha256-x448"
    assert format_proposal(one("aes256-sha256-prfsha256-modp2048")) == "aes256-sha256-modp2048"


def test_esp_defaults_to_noesn_and_keeps_esn_order() -> None:
    assert one("aes256gcm16", ESP).esn == (NO_ESN,)
    assert one("aes256gcm16-esn", ESP).esn == (ESN,)
    assert one("aes256gcm16-noesn-esn", ESP).esn == (NO_ESN, ESN)
    assert one("aes256gcm16", ESP).protocol == ESP
    assert one("aes256gcm16", ESP).ke == ()


def test_additional_key_exchanges() -> None:
    spec = one("aes256gcm16-prfsha256-x25519-ke1_mlkem768-ke1_none-ke3_mlkem1024")
    assert spec.addke == ((KeId.ML_KEM_768, KeId.NONE), (), (KeId.ML_KEM_1024,))


def test_default_expands_to_the_built_in_sets() -> None:
    ike = parse_proposals("default", protocol=IKE)
    assert [format_proposal(s) for s in ike] == DEFAULT_IKE_PROPOSALS.split(",")
    esp = parse_proposals("aes256gcm16-x25519,default", protocol=ESP)
    assert [format_proposal(s) for s in esp] == ["aes256gcm16-x25519", *DEFAULT_ESP_PROPOSALS.split(",")]
    for spec in (*ike, *esp):  # defaults are modern
        assert not {format_proposal(spec).split("-")[0]} & LEGACY_KEYWORDS


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "keyword"),
    [
        ("aes256-sha256-modp1024", "modp1024"),
        ("aes256-sha256-modp1536", "modp1536"),
        ("aes256-sha1-x25519", "sha1"),
        ("aes256gcm16-prfsha1-x25519", "prfsha1"),
        ("3des-sha256-x25519", "3des"),
        ("aes256-sha256-x25519-ke1_modp1024", "ke1_modp1024"),
    ],
)
def test_legacy_keywords_need_opt_in(text: str, keyword: str) -> None:
    with pytest.raises(ConfigError, match=f"'{keyword}'.*legacy.*allow_legacy"):
        parse_proposals(text, protocol=IKE)
    assert parse_proposals(text, protocol=IKE, allow_legacy=True)


def test_strongswan_legacy_capture_proposal_parses_with_opt_in() -> None:
    spec = one("aes256-sha1-modp1024", allow_legacy=True)
    assert spec.prf == (PrfId.PRF_HMAC_SHA1,)
    assert format_proposal(spec) == "aes256-sha1-modp1024"


@pytest.mark.parametrize(
    ("text", "keyword", "suggestion"),
    [
        ("aes257-sha256-x25519", "aes257", "aes256"),
        ("aes256-sha265-x25519", "sha265", "sha256"),
        ("aes256gcm16-prfsha256-x2519", "x2519", "x25519"),
        ("aes256gcm16-prfsha256-x25519-ke9_mlkem768", "ke9_mlkem768", "ke7_mlkem768"),
        ("aes256gcm16-prfsha256-x25519-ke1_mlkem769", "ke1_mlkem769", "ke1_mlkem768"),
    ],
)
def test_unknown_keyword_named_with_close_matches(text: str, keyword: str, suggestion: str) -> None:
    with pytest.raises(ConfigError, match=f"unknown algorithm keyword '{keyword}'") as exc:
        parse_proposals(text, protocol=IKE)
    assert f"'{suggestion}'" in str(exc.value)


def test_unknown_keyword_without_close_match_has_no_hint() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_proposals("aes256-sha256-zzzzzzzzzz", protocol=IKE)
    assert "did you mean" not in str(exc.value)


@pytest.mark.parametrize(
    ("text", "protocol", "message"),
    [
        ("aes256gcm16-x25519", IKE, "needs a PRF"),
        ("aes256-x25519", IKE, "needs an integrity"),
        ("aes256", ESP, "needs an integrity"),
        ("aes256-sha256", IKE, "needs a key exchange"),
        ("sha256-prfsha256-x25519", IKE, "no encryption"),
        ("aes256gcm16-sha256-prfsha256-x25519", IKE, "AEAD cipher takes no integrity"),
        ("aes256gcm16-aes256-sha256-x25519", IKE, "mixes AEAD and non-AEAD"),
        ("aes256gcm16-prfsha256-x25519-esn", IKE, "ESP proposals only"),
        ("aes256gcm16-prfsha256", ESP, "IKE proposals only"),
        ("aes256-aes256-sha256-x25519", IKE, "listed twice"),
        ("aes256--sha256-x25519", IKE, "empty algorithm keyword"),
        ("aes256-sha256-x25519,", IKE, "empty proposal"),
        ("", IKE, "empty proposal list"),
    ],
)
def test_rule_violations(text: str, protocol: ProtocolId, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_proposals(text, protocol=protocol)


def test_only_ike_and_esp_are_parsed() -> None:
    with pytest.raises(ValueError, match="IKE or ESP"):
        parse_proposals("aes256-sha256", protocol=ProtocolId.AH)


def test_format_of_algorithms_without_keywords() -> None:
    spec = ProposalSpec(
        protocol=ESP,
        encr=((EncrId.ENCR_CAMELLIA_CBC, 256),),
        integ=(IntegId.AUTH_HMAC_MD5_96,),
        esn=(NO_ESN,),
    )
    assert format_proposal(spec) == "encr_camellia_cbc_256-auth_hmac_md5_96"


@given(st.text(alphabet="abcdeghlmnoprsx0123456789_-, ", max_size=40))
def test_any_text_raises_only_config_error(text: str) -> None:
    for protocol in (IKE, ESP):
        try:
            specs = parse_proposals(text, protocol=protocol, allow_legacy=True)
        except ConfigError:
            continue
        for spec in specs:  # whatever parses prints back to something that parses to the same
            assert parse_proposals(format_proposal(spec), protocol=protocol, allow_legacy=True) == (spec,)
