"""IKEv2 transform registries (RFC 7296 §3.3.2, RFC 9370 for the additional key exchanges).

Names follow the IANA "Transform Type n - ... Transform IDs" registries; the key-exchange
IDs use the short forms strongSwan and the RFCs use in prose (MODP_2048, ECP_256, CURVE25519).
"""

from __future__ import annotations

from pyipsec.iana.base import OpenIntEnum

__all__ = ["EncrId", "EsnId", "IntegId", "KeId", "PrfId", "TransformAttr", "TransformType"]


class TransformType(OpenIntEnum):
    """Transform Type Values (RFC 7296 §3.3.2; RFC 9370 for ADDKE1-7)."""

    ENCR = 1
    PRF = 2
    INTEG = 3
    KE = 4  # "Diffie-Hellman group" before RFC 9370
    ESN = 5
    ADDKE1 = 6
    ADDKE2 = 7
    ADDKE3 = 8
    ADDKE4 = 9
    ADDKE5 = 10
    ADDKE6 = 11
    ADDKE7 = 12


class EncrId(OpenIntEnum):
    """Transform Type 1 - Encryption Algorithm Transform IDs."""

    ENCR_DES_IV64 = 1
    ENCR_DES = 2
    ENCR_3DES = 3
    ENCR_RC5 = 4
    ENCR_IDEA = 5
    ENCR_CAST = 6
    ENCR_BLOWFISH = 7
    ENCR_3IDEA = 8
    ENCR_DES_IV32 = 9
    ENCR_NULL = 11
    ENCR_AES_CBC = 12
    ENCR_AES_CTR = 13
    ENCR_AES_CCM_8 = 14
    ENCR_AES_CCM_12 = 15
    ENCR_AES_CCM_16 = 16
    ENCR_AES_GCM_8 = 18
    ENCR_AES_GCM_12 = 19
    ENCR_AES_GCM_16 = 20
    ENCR_NULL_AUTH_AES_GMAC = 21
    ENCR_CAMELLIA_CBC = 23
    ENCR_CAMELLIA_CTR = 24
    ENCR_CAMELLIA_CCM_8_ICV = 25
    ENCR_CAMELLIA_CCM_12_ICV = 26
    ENCR_CAMELLIA_CCM_16_ICV = 27
    ENCR_CHACHA20_POLY1305 = 28
    ENCR_AES_CCM_8_IIV = 29
    ENCR_AES_GCM_16_IIV = 30
    ENCR_CHACHA20_POLY1305_IIV = 31


class PrfId(OpenIntEnum):
    """Transform Type 2 - Pseudorandom Function Transform IDs."""

    PRF_HMAC_MD5 = 1
    PRF_HMAC_SHA1 = 2
    PRF_HMAC_TIGER = 3
    PRF_AES128_XCBC = 4
    PRF_HMAC_SHA2_256 = 5
    PRF_HMAC_SHA2_384 = 6
    PRF_HMAC_SHA2_512 = 7
    PRF_AES128_CMAC = 8
    PRF_HMAC_STREEBOG_512 = 9


class IntegId(OpenIntEnum):
    """Transform Type 3 - Integrity Algorithm Transform IDs."""

    NONE = 0
    AUTH_HMAC_MD5_96 = 1
    AUTH_HMAC_SHA1_96 = 2
    AUTH_DES_MAC = 3
    AUTH_KPDK_MD5 = 4
    AUTH_AES_XCBC_96 = 5
    AUTH_HMAC_MD5_128 = 6
    AUTH_HMAC_SHA1_160 = 7
    AUTH_AES_CMAC_96 = 8
    AUTH_AES_128_GMAC = 9
    AUTH_AES_192_GMAC = 10
    AUTH_AES_256_GMAC = 11
    AUTH_HMAC_SHA2_256_128 = 12
    AUTH_HMAC_SHA2_384_192 = 13
    AUTH_HMAC_SHA2_512_256 = 14


class KeId(OpenIntEnum):
    """Transform Type 4 - Key Exchange Method Transform IDs (formerly D-H groups)."""

    NONE = 0
    MODP_768 = 1
    MODP_1024 = 2
    MODP_1536 = 5
    MODP_2048 = 14
    MODP_3072 = 15
    MODP_4096 = 16
    MODP_6144 = 17
    MODP_8192 = 18
    ECP_256 = 19
    ECP_384 = 20
    ECP_521 = 21
    MODP_1024_160_POS = 22
    MODP_2048_224_POS = 23
    MODP_2048_256_POS = 24
    ECP_192 = 25
    ECP_224 = 26
    BRAINPOOL_P224 = 27
    BRAINPOOL_P256 = 28
    BRAINPOOL_P384 = 29
    BRAINPOOL_P512 = 30
    CURVE25519 = 31
    CURVE448 = 32
    GOST3410_2012_256 = 33
    GOST3410_2012_512 = 34
    ML_KEM_512 = 35
    ML_KEM_768 = 36
    ML_KEM_1024 = 37


class EsnId(OpenIntEnum):
    """Transform Type 5 - Extended Sequence Numbers Transform IDs."""

    NO_EXTENDED_SEQUENCE_NUMBERS = 0
    EXTENDED_SEQUENCE_NUMBERS = 1


class TransformAttr(OpenIntEnum):
    """IKEv2 Transform Attribute Types (RFC 7296 §3.3.5). Key Length is TV format (AF=1)."""

    KEY_LENGTH = 14
