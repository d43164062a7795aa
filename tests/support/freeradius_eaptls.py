"""FreeRADIUS 3.2 as an independent EAP-TLS server for tests: a whole configuration in a temp dir.

Theory of operation
-------------------
:meth:`FreeRadiusEapTls.write` writes a self-contained ``radiusd.conf`` (no file of /etc is
read; the dictionaries come from /usr/share/freeradius) with one client, one authentication
listener and the ``eap`` module doing only EAP-TLS with the given certificates, ``tls_min_version``
1.2 and the chosen ``tls_max_version``. :meth:`FreeRadiusEapTls.argv` runs it in the foreground
(``-f``) with its log on stdout (``-l stdout``) and debug output (``-xx``) for failure reports.
:func:`radius_eap_round` sends one EAP packet in an Access-Request (EAP-Message split into
253-octet attributes, Message-Authenticator, the State of the previous Challenge, RFC 3579) and
returns the reply; :func:`mppe_key` decrypts an MS-MPPE-Send/Recv-Key (RFC 2548 §2.4.2), whose
two halves are the MSK (RFC 5216 §2.3: Recv-Key = MSK[0:32], Send-Key = MSK[32:64]).
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

__all__ = ["DICTIONARY", "FREERADIUS", "SECRET", "FreeRadiusEapTls", "mppe_key"]

FREERADIUS = shutil.which("freeradius") or "/usr/sbin/freeradius"
SECRET = b"eap-tls-test-secret"

# The attributes the tests use, for pyrad (RFC 2865, RFC 3579, RFC 2548).
DICTIONARY = """\
ATTRIBUTE\tUser-Name\t1\tstring
ATTRIBUTE\tNAS-IP-Address\t4\tipaddr
ATTRIBUTE\tState\t24\toctets
ATTRIBUTE\tNAS-Identifier\t32\tstring
ATTRIBUTE\tEAP-Message\t79\toctets
ATTRIBUTE\tMessage-Authenticator\t80\toctets
VENDOR\tMicrosoft\t311
BEGIN-VENDOR\tMicrosoft
ATTRIBUTE\tMS-MPPE-Send-Key\t16\toctets
ATTRIBUTE\tMS-MPPE-Recv-Key\t17\toctets
END-VENDOR\tMicrosoft
"""

_RADIUSD_CONF = """\
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = {dir}
sbindir = /usr/sbin
logdir = {dir}
raddbdir = {dir}
radacctdir = {dir}
name = freeradius
confdir = {dir}
modconfdir = {dir}
certdir = {dir}
cadir = {dir}
run_dir = {dir}
db_dir = {dir}
libdir = /usr/lib/freeradius
dictdir = /usr/share/freeradius
pidfile = {dir}/radiusd.pid
max_request_time = 30
cleanup_delay = 5
max_requests = 1024
hostname_lookups = no
log {{
    destination = stdout
    auth = yes
}}
security {{
    allow_core_dumps = no
    max_attributes = 200
    reject_delay = 0
    status_server = no
}}
thread pool {{
    start_servers = 1
    max_servers = 2
    min_spare_servers = 1
    max_spare_servers = 2
}}
client test {{
    ipaddr = {client}
    secret = {secret}
    require_message_authenticator = yes
}}
modules {{
    eap {{
        default_eap_type = tls
        timer_expire = 60
        ignore_unknown_eap_types = no
        max_sessions = 64
        tls-config tls-common {{
            private_key_file = {dir}/server.key
            certificate_file = {dir}/server.pem
            ca_file = {dir}/ca.pem
            auto_chain = no
            fragment_size = {fragment_size}
            include_length = yes
            check_crl = no
            cipher_list = "DEFAULT"
            tls_min_version = "1.2"
            tls_max_version = "{tls_max_version}"
            ecdh_curve = ""
            cache {{
                enable = no
            }}
        }}
        tls {{
            tls = tls-common
        }}
    }}
}}
server default {{
    listen {{
        type = auth
        ipaddr = {listen}
        port = {port}
    }}
    authorize {{
        eap {{
            ok = return
        }}
    }}
    authenticate {{
        eap
    }}
    post-auth {{
    }}
}}
"""


@dataclass(frozen=True)
class FreeRadiusEapTls:
    """A FreeRADIUS configuration directory for EAP-TLS."""

    directory: Path
    port: int

    @classmethod
    def write(
        cls,
        directory: str | Path,
        pki: object,
        *,
        tls_max_version: str,
        client_addr: str,
        listen_addr: str = "*",
        port: int = 1812,
        fragment_size: int = 1024,
    ) -> FreeRadiusEapTls:
        """Write the configuration; ``pki`` is a tests.unit.eap._tls_support.Pki."""
        d = Path(directory)
        gateway, intermediate, root = pki.gateway, pki.intermediate, pki.root  # type: ignore[attr-defined]
        (d / "server.pem").write_bytes(gateway.pem + intermediate.pem)
        (d / "server.key").write_bytes(
            gateway.key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        (d / "ca.pem").write_bytes(root.pem)
        (d / "dictionary").write_text("")
        (d / "radiusd.conf").write_text(
            _RADIUSD_CONF.format(
                dir=d,
                client=client_addr,
                secret=SECRET.decode(),
                listen=listen_addr,
                port=port,
                fragment_size=fragment_size,
                tls_max_version=tls_max_version,
            )
        )
        return cls(d, port)

    def argv(self) -> list[str]:
        return [FREERADIUS, "-f", "-xx", "-l", "stdout", "-d", str(self.directory)]


def mppe_key(value: bytes, secret: bytes, request_authenticator: bytes) -> bytes:
    """Decrypt an MS-MPPE-Send/Recv-Key attribute value (RFC 2548 §2.4.2)."""
    salt, cipher = value[:2], value[2:]
    plain = b""
    previous = request_authenticator + salt
    for i in range(0, len(cipher), 16):
        block = hashlib.md5(secret + previous).digest()
        chunk = cipher[i : i + 16]
        plain += bytes(a ^ b for a, b in zip(chunk, block, strict=False))
        previous = chunk
    return plain[1 : 1 + plain[0]]
