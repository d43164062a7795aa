"""PKI for remote access: a small CA, gateway and client certificates, and client profiles.

``ca`` issues certificates, ``files`` stores them (keys with mode 0600), ``revoke`` records
revocations and issues the CA's CRL, ``info`` describes certificates and ``profiles`` writes
configuration profiles for the IKEv2 clients built into Apple systems, Windows and the
strongSwan Android app, and for pyipsec itself. The CLI front end
is :mod:`pyipsec.cli.pki` (``pyipsec pki ...`` and ``pyipsec user export``).
"""

from pyipsec.pki.ca import Issued, create_ca, issue_client, issue_gateway, pkcs12_bundle
from pyipsec.pki.errors import PkiError, ProfileError
from pyipsec.pki.keys import DEFAULT_KEY, KeySpec
from pyipsec.pki.profiles import ClientSuite, Profile, ProfileFormat, ProfileSpec, build_profile

__all__ = [
    "DEFAULT_KEY",
    "ClientSuite",
    "Issued",
    "KeySpec",
    "PkiError",
    "Profile",
    "ProfileError",
    "ProfileFormat",
    "ProfileSpec",
    "build_profile",
    "create_ca",
    "issue_client",
    "issue_gateway",
    "pkcs12_bundle",
]
