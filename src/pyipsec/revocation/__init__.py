"""Certificate revocation for IKE authentication: OCSP (RFC 6960) and CRLs (RFC 5280).

After the IKE engine has verified a peer's certificate chain, the daemon asks
:meth:`RevocationChecker.check` "is this chain revoked under policy P?" and resumes IKE_AUTH
with the :class:`RevocationVerdict` (``ok`` false → AUTHENTICATION_FAILED, ``reason`` to the
log). ``verdict`` holds the policies and the decision, ``ocsp`` and ``crl`` the two protocols,
``fetch`` the HTTP client, ``checker`` puts them together. Nothing here imports the IKE engine,
the daemon, the configuration or the CLI.
"""

from pyipsec.revocation.checker import RevocationChecker
from pyipsec.revocation.crl import CrlError
from pyipsec.revocation.fetch import Fetcher, FetchError, HttpFetcher
from pyipsec.revocation.ocsp import OcspError
from pyipsec.revocation.verdict import CertCheck, CertStatus, RevocationPolicy, RevocationVerdict, decide

__all__ = [
    "CertCheck",
    "CertStatus",
    "CrlError",
    "FetchError",
    "Fetcher",
    "HttpFetcher",
    "OcspError",
    "RevocationChecker",
    "RevocationPolicy",
    "RevocationVerdict",
    "decide",
]
