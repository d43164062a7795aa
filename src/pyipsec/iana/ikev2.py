"""IKEv2 parameter registries (IANA "Internet Key Exchange Version 2 (IKEv2) Parameters").

Member names follow the registries' names (RFC 7296 and the extension RFCs cited per
value). Every registry is open: unknown values decode as pseudo-members.
"""

from __future__ import annotations

from enum import IntFlag

from pyipsec.iana.base import OpenIntEnum

__all__ = [
    "AuthMethod",
    "CertEncoding",
    "CfgAttr",
    "CfgType",
    "EapCode",
    "EapType",
    "ExchangeType",
    "HashAlgorithm",
    "HeaderFlag",
    "IdType",
    "IpProtocol",
    "NotifyType",
    "PayloadType",
    "ProtocolId",
    "TsType",
]


class ExchangeType(OpenIntEnum):
    """IKEv2 Exchange Types (RFC 7296 §3.1)."""

    IKE_SA_INIT = 34
    IKE_AUTH = 35
    CREATE_CHILD_SA = 36
    INFORMATIONAL = 37
    IKE_SESSION_RESUME = 38  # RFC 5723
    GSA_AUTH = 39  # RFC 9838
    GSA_REGISTRATION = 40
    GSA_REKEY = 41
    GSA_INBAND_REKEY = 42
    IKE_INTERMEDIATE = 43  # RFC 9242
    IKE_FOLLOWUP_KE = 44  # RFC 9370


class HeaderFlag(IntFlag):
    """IKE header flags (RFC 7296 §3.1)."""

    NONE = 0
    INITIATOR = 0x08
    VERSION = 0x10
    RESPONSE = 0x20


class PayloadType(OpenIntEnum):
    """IKEv2 Payload Types (RFC 7296 §3.2), by their registry notation."""

    NO_NEXT_PAYLOAD = 0
    SA = 33
    KE = 34
    IDi = 35
    IDr = 36
    CERT = 37
    CERTREQ = 38
    AUTH = 39
    NONCE = 40  # Ni, Nr
    N = 41  # Notify
    D = 42  # Delete
    V = 43  # Vendor ID
    TSi = 44
    TSr = 45
    SK = 46  # Encrypted and Authenticated
    CP = 47  # Configuration
    EAP = 48
    GSPM = 49  # RFC 6467
    IDg = 50  # RFC 9838
    GSA = 51
    KD = 52
    SKF = 53  # Encrypted and Authenticated Fragment, RFC 7383
    PS = 54  # Puzzle Solution, RFC 8019


class ProtocolId(OpenIntEnum):
    """Security Protocol Identifiers (RFC 7296 §3.3.1)."""

    NONE = 0
    IKE = 1
    AH = 2
    ESP = 3
    FC_ESP_HEADER = 4  # RFC 4595
    FC_CT_AUTHENTICATION = 5


class IdType(OpenIntEnum):
    """IKEv2 Identification Payload ID Types (RFC 7296 §3.5)."""

    ID_IPV4_ADDR = 1
    ID_FQDN = 2
    ID_RFC822_ADDR = 3
    ID_IPV6_ADDR = 5
    ID_DER_ASN1_DN = 9
    ID_DER_ASN1_GN = 10
    ID_KEY_ID = 11
    ID_FC_NAME = 12  # RFC 4595
    ID_NULL = 13  # RFC 7619


class CertEncoding(OpenIntEnum):
    """IKEv2 Certificate Encodings (RFC 7296 §3.6)."""

    PKCS7_WRAPPED_X509_CERTIFICATE = 1
    PGP_CERTIFICATE = 2
    DNS_SIGNED_KEY = 3
    X509_CERTIFICATE_SIGNATURE = 4
    KERBEROS_TOKEN = 6
    CERTIFICATE_REVOCATION_LIST = 7
    AUTHORITY_REVOCATION_LIST = 8
    SPKI_CERTIFICATE = 9
    X509_CERTIFICATE_ATTRIBUTE = 10
    RAW_RSA_KEY = 11  # deprecated by RFC 7296
    HASH_AND_URL_OF_X509_CERTIFICATE = 12
    HASH_AND_URL_OF_X509_BUNDLE = 13
    OCSP_CONTENT = 14  # RFC 4806
    RAW_PUBLIC_KEY = 15  # RFC 7670


class AuthMethod(OpenIntEnum):
    """IKEv2 Authentication Method (RFC 7296 §3.8 and extensions)."""

    RSA_DIGITAL_SIGNATURE = 1
    SHARED_KEY_MESSAGE_INTEGRITY_CODE = 2
    DSS_DIGITAL_SIGNATURE = 3
    ECDSA_SHA_256_P256 = 9  # RFC 4754
    ECDSA_SHA_384_P384 = 10
    ECDSA_SHA_512_P521 = 11
    GENERIC_SECURE_PASSWORD_AUTHENTICATION_METHOD = 12  # RFC 6467
    NULL_AUTHENTICATION = 13  # RFC 7619
    DIGITAL_SIGNATURE = 14  # RFC 7427


class HashAlgorithm(OpenIntEnum):
    """IKEv2 Hash Algorithms for SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4)."""

    RESERVED = 0
    SHA1 = 1
    SHA2_256 = 2
    SHA2_384 = 3
    SHA2_512 = 4
    IDENTITY = 5  # RFC 8420


class NotifyType(OpenIntEnum):
    """IKEv2 Notify Message Types: errors (1-16383) and status types (16384-)."""

    # Error types (RFC 7296 §3.10.1 unless noted)
    UNSUPPORTED_CRITICAL_PAYLOAD = 1
    INVALID_IKE_SPI = 4
    INVALID_MAJOR_VERSION = 5
    INVALID_SYNTAX = 7
    INVALID_MESSAGE_ID = 9
    INVALID_SPI = 11
    NO_PROPOSAL_CHOSEN = 14
    INVALID_KE_PAYLOAD = 17
    AUTHENTICATION_FAILED = 24
    SINGLE_PAIR_REQUIRED = 34
    NO_ADDITIONAL_SAS = 35
    INTERNAL_ADDRESS_FAILURE = 36
    FAILED_CP_REQUIRED = 37
    TS_UNACCEPTABLE = 38
    INVALID_SELECTORS = 39
    UNACCEPTABLE_ADDRESSES = 40  # RFC 4555
    UNEXPECTED_NAT_DETECTED = 41  # RFC 4555
    USE_ASSIGNED_HoA = 42  # RFC 5026
    TEMPORARY_FAILURE = 43
    CHILD_SA_NOT_FOUND = 44
    INVALID_GROUP_ID = 45  # RFC 9838
    AUTHORIZATION_FAILED = 46  # RFC 9838
    STATE_NOT_FOUND = 47  # RFC 9370

    # Status types
    INITIAL_CONTACT = 16384
    SET_WINDOW_SIZE = 16385
    ADDITIONAL_TS_POSSIBLE = 16386
    IPCOMP_SUPPORTED = 16387
    NAT_DETECTION_SOURCE_IP = 16388
    NAT_DETECTION_DESTINATION_IP = 16389
    COOKIE = 16390
    USE_TRANSPORT_MODE = 16391
    HTTP_CERT_LOOKUP_SUPPORTED = 16392
    REKEY_SA = 16393
    ESP_TFC_PADDING_NOT_SUPPORTED = 16394
    NON_FIRST_FRAGMENTS_ALSO = 16395
    MOBIKE_SUPPORTED = 16396  # RFC 4555
    ADDITIONAL_IP4_ADDRESS = 16397  # RFC 4555
    ADDITIONAL_IP6_ADDRESS = 16398  # RFC 4555
    NO_ADDITIONAL_ADDRESSES = 16399  # RFC 4555
    UPDATE_SA_ADDRESSES = 16400  # RFC 4555
    COOKIE2 = 16401  # RFC 4555
    NO_NATS_ALLOWED = 16402  # RFC 4555
    AUTH_LIFETIME = 16403  # RFC 4478
    MULTIPLE_AUTH_SUPPORTED = 16404  # RFC 4739
    ANOTHER_AUTH_FOLLOWS = 16405  # RFC 4739
    REDIRECT_SUPPORTED = 16406  # RFC 5685
    REDIRECT = 16407  # RFC 5685
    REDIRECTED_FROM = 16408  # RFC 5685
    TICKET_LT_OPAQUE = 16409  # RFC 5723
    TICKET_REQUEST = 16410
    TICKET_ACK = 16411
    TICKET_NACK = 16412
    TICKET_OPAQUE = 16413
    LINK_ID = 16414  # RFC 5739
    USE_WESP_MODE = 16415  # RFC 5840
    ROHC_SUPPORTED = 16416  # RFC 5857
    EAP_ONLY_AUTHENTICATION = 16417  # RFC 5998
    CHILDLESS_IKEV2_SUPPORTED = 16418  # RFC 6023
    QUICK_CRASH_DETECTION = 16419  # RFC 6290
    IKEV2_MESSAGE_ID_SYNC_SUPPORTED = 16420  # RFC 6311
    IPSEC_REPLAY_COUNTER_SYNC_SUPPORTED = 16421
    IKEV2_MESSAGE_ID_SYNC = 16422
    IPSEC_REPLAY_COUNTER_SYNC = 16423
    SECURE_PASSWORD_METHODS = 16424  # RFC 6467
    PSK_PERSIST = 16425  # RFC 6631
    PSK_CONFIRM = 16426
    ERX_SUPPORTED = 16427  # RFC 6867
    IFOM_CAPABILITY = 16428
    SENDER_REQUEST_ID = 16429
    IKEV2_FRAGMENTATION_SUPPORTED = 16430  # RFC 7383
    SIGNATURE_HASH_ALGORITHMS = 16431  # RFC 7427
    CLONE_IKE_SA_SUPPORTED = 16432  # RFC 7791
    CLONE_IKE_SA = 16433
    PUZZLE = 16434  # RFC 8019
    USE_PPK = 16435  # RFC 8784
    PPK_IDENTITY = 16436
    NO_PPK_AUTH = 16437
    INTERMEDIATE_EXCHANGE_SUPPORTED = 16438  # RFC 9242
    IP4_ALLOWED = 16439  # RFC 8983
    IP6_ALLOWED = 16440
    ADDITIONAL_KEY_EXCHANGE = 16441  # RFC 9370
    USE_AGGFRAG = 16442  # RFC 9347

    @property
    def is_error(self) -> bool:
        """Error types are 0-16383 (RFC 7296 §3.10.1)."""
        return int(self) < 16384


class TsType(OpenIntEnum):
    """IKEv2 Traffic Selector Types (RFC 7296 §3.13.1)."""

    TS_IPV4_ADDR_RANGE = 7
    TS_IPV6_ADDR_RANGE = 8
    TS_FC_ADDR_RANGE = 9  # RFC 4595
    TS_SECLABEL = 10  # RFC 9478


class CfgType(OpenIntEnum):
    """IKEv2 Configuration Payload CFG Types (RFC 7296 §3.15)."""

    CFG_REQUEST = 1
    CFG_REPLY = 2
    CFG_SET = 3
    CFG_ACK = 4


class CfgAttr(OpenIntEnum):
    """IKEv2 Configuration Payload Attribute Types (RFC 7296 §3.15.1 and extensions)."""

    INTERNAL_IP4_ADDRESS = 1
    INTERNAL_IP4_NETMASK = 2
    INTERNAL_IP4_DNS = 3
    INTERNAL_IP4_NBNS = 4
    INTERNAL_IP4_DHCP = 6
    APPLICATION_VERSION = 7
    INTERNAL_IP6_ADDRESS = 8
    INTERNAL_IP6_DNS = 10
    INTERNAL_IP6_DHCP = 12
    INTERNAL_IP4_SUBNET = 13
    SUPPORTED_ATTRIBUTES = 14
    INTERNAL_IP6_SUBNET = 15
    MIP6_HOME_PREFIX = 16  # RFC 5026
    INTERNAL_IP6_LINK = 17  # RFC 5739
    INTERNAL_IP6_PREFIX = 18  # RFC 5739
    HOME_AGENT_ADDRESS = 19  # RFC 5739
    P_CSCF_IP4_ADDRESS = 20  # RFC 7651
    P_CSCF_IP6_ADDRESS = 21
    FTT_KAT = 22  # RFC 6311
    EXTERNAL_SOURCE_IP4_NAT_INFO = 23  # RFC 7296 errata / 3GPP
    TIMEOUT_PERIOD_FOR_LIVENESS_CHECK = 24  # 3GPP
    INTERNAL_DNS_DOMAIN = 25  # RFC 8598
    INTERNAL_DNSSEC_TA = 26  # RFC 8598


class EapCode(OpenIntEnum):
    """EAP Codes (RFC 3748 §4)."""

    REQUEST = 1
    RESPONSE = 2
    SUCCESS = 3
    FAILURE = 4


class EapType(OpenIntEnum):
    """EAP method types (RFC 3748 §5 and the IANA EAP registry)."""

    IDENTITY = 1
    NOTIFICATION = 2
    NAK = 3
    MD5_CHALLENGE = 4
    OTP = 5
    GTC = 6
    TLS = 13
    SIM = 18
    TTLS = 21
    AKA = 23
    PEAP = 25
    MSCHAPV2 = 26
    AKA_PRIME = 50
    EXPANDED = 254


class IpProtocol(OpenIntEnum):
    """The IP protocol numbers that traffic selectors and ESP name most (IANA protocol numbers)."""

    ANY = 0
    ICMP = 1
    IPV4 = 4  # IP-in-IP, ESP tunnel mode next header
    TCP = 6
    UDP = 17
    IPV6 = 41
    ESP = 50
    AH = 51
    ICMPV6 = 58
    SCTP = 132
