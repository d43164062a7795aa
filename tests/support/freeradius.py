"""A real FreeRADIUS 3.2 for the root test tier, with its own minimal configuration.

Theory of operation
-------------------
:class:`FreeRadius` writes a complete, stripped-down FreeRADIUS configuration into a temporary
directory (never ``/etc/freeradius``) and starts ``freeradius -f -d <dir> -l stdout`` inside a
network namespace of a :class:`~tests.support.netns.Topology` with ``Namespace.popen``, so the
topology's teardown kills it even if the test dies. The configuration holds:

* ``radiusd.conf``: all paths inside the temporary directory, logging to stdout, no proxying,
  no reject delay (tests stay fast), two worker threads, one ``client`` (the gateway's address
  or prefix and the shared secret, ``require_message_authenticator = yes``) and one virtual
  server listening on ``listen`` for authentication and accounting.
* modules: ``files`` (users from :class:`RadiusUser`: ``Cleartext-Password`` plus optional
  reply attributes written verbatim in the ``users`` file syntax), ``mschap``, ``eap`` with
  ``mschapv2`` (unless ``mschapv2=False``) and, when :class:`TlsFiles` are given, ``tls``
  (server certificate with its chain, key and CA from the test; build them with
  ``tests/support/pki.py``; TLS 1.2 up to ``tls_max_version``, fragments of at most
  ``tls_fragment_size`` octets, RFC 5216 §2.1.5; OpenSSL's default key exchange groups, so that
  a TLS 1.3 client's first key share is taken without a HelloRetryRequest round, which matters
  because FreeRADIUS aborts an EAP session after 50 rounds), ``default_eap_type`` selectable, and
  ``detail`` writing every Accounting-Request to ``<dir>/detail``.
* the virtual server: ``authorize { eap { ok = return }; files }``, ``authenticate { eap;
  Auth-Type MS-CHAP { mschap } }``, ``accounting { detail }``.

:meth:`FreeRadius.start` returns once the log says "Ready to process requests" (the whole start
takes well under a second); a background thread keeps reading the log (:attr:`FreeRadius.log`).
:meth:`FreeRadius.stop` (also ``__exit__``) terminates the server and removes the directory.
:meth:`FreeRadius.detail_records` parses the detail file into one dict per record (attribute
name to value, quotes removed, repeated attributes joined with a newline, ``"_time"`` the
header line).

EAP-TLS: pass ``tls=TlsFiles(...)`` (and ``default_eap_type="tls"`` if the server should start
with TLS instead of proposing MSCHAPv2; ``mschapv2=False`` for a server that does EAP-TLS only).
FreeRADIUS checks the client certificate against the current wall-clock time, so its validity
window must contain today (pki's default window is around 2030: pass ``not_before``/
``not_after``).

Clients: :func:`relay_eap` drives one whole EAP conversation between an EAP peer of ours
(``MsChapV2Peer``, ``EapTlsPeer``) and the server through :class:`pyipsec.radius.RadiusClient`,
the gateway's own RADIUS client, so the tests check our MSK against the MS-MPPE keys the server
derived (``EapRelayAnswer.msk``) with the production codec and nothing written twice.

Failure reports: ``debug=True`` starts FreeRADIUS with ``-xx`` (every packet and TLS step in
the log) and ``log_path`` receives a copy of the log as it is written, which survives
:meth:`FreeRadius.stop` (hand it to the ``debug_logs`` fixture).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from pyipsec.ike.eap.base import EapPeer
from pyipsec.radius import EapRelayAnswer, RadiusAnswerKind, RadiusClient
from tests.support.netns import Namespace

__all__ = [
    "IDENTITY_REQUEST",
    "FreeRadius",
    "FreeRadiusError",
    "RadiusUser",
    "TlsFiles",
    "freeradius_available",
    "parse_detail",
    "relay_eap",
]

FREERADIUS = "/usr/sbin/freeradius"
_READY = "Ready to process requests"

IDENTITY_REQUEST = bytes([1, 0x2A, 0, 5, 1])
"""EAP-Request/Identity, Identifier 42 (RFC 3748 §5.1): what the gateway asks before relaying."""


class FreeRadiusError(RuntimeError):
    """FreeRADIUS did not start (the message carries its log)."""


def freeradius_available() -> str | None:
    """Why FreeRADIUS cannot run here, or None."""
    if shutil.which(FREERADIUS) is None and not Path(FREERADIUS).exists():
        return "freeradius is not installed (bash scripts/install-deps.sh)"
    return None


@dataclass(frozen=True)
class RadiusUser:
    """A user of the ``files`` module: ``reply`` items are ``(attribute, value)`` in users-file
    syntax, written verbatim (``("Framed-IP-Address", "10.9.0.5")``, ``("Class", "0x6869")``,
    ``("Framed-IPv6-Prefix", "fd00:9::/64")``)."""

    name: str
    password: str
    reply: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class TlsFiles:
    """PEM data of the EAP-TLS server: its certificate, its key and the CA of the clients."""

    cert_pem: bytes  # the server's certificate, then the intermediates it sends
    key_pem: bytes
    ca_pem: bytes


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_detail(text: str) -> list[dict[str, str]]:
    """Records of a FreeRADIUS detail file: a header line (the time), then ``\\tName = value``."""
    records: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for line in text.splitlines():
        if not line.strip():
            current = None
            continue
        if not line[0].isspace():
            current = {"_time": line.strip()}
            records.append(current)
            continue
        if current is None or " = " not in line:
            continue
        name, value = line.strip().split(" = ", 1)
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        current[name] = f"{current[name]}\n{value}" if name in current else value
    return records


class FreeRadius:
    """One FreeRADIUS server in ``ns`` (see the module docstring); a context manager."""

    def __init__(
        self,
        ns: Namespace,
        *,
        listen: str,
        client: str,
        secret: bytes,
        users: Sequence[RadiusUser] = (),
        auth_port: int = 1812,
        acct_port: int = 1813,
        default_eap_type: str = "mschapv2",
        tls: TlsFiles | None = None,
        tls_max_version: str = "1.2",
        tls_fragment_size: int = 1024,
        mschapv2: bool = True,
        debug: bool = False,
        log_path: Path | None = None,
    ) -> None:
        self.ns = ns
        self.listen = listen
        self.client = client
        self.secret = secret
        self.users = tuple(users)
        self.auth_port = auth_port
        self.acct_port = acct_port
        self.default_eap_type = default_eap_type
        self.tls = tls
        self.tls_max_version = tls_max_version
        self.tls_fragment_size = tls_fragment_size
        self.mschapv2 = mschapv2
        self.debug = debug
        self.log_path = log_path
        self.dir = Path(tempfile.mkdtemp(prefix="pyipsec-freeradius-"))
        self._lines: list[str] = []
        self._ready = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"FreeRadius({self.ns.name}, {self.listen}:{self.auth_port}/{self.acct_port})"

    def __enter__(self) -> FreeRadius:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def log(self) -> str:
        return "\n".join(self._lines)

    @property
    def detail_path(self) -> Path:
        return self.dir / "detail"

    def detail_records(self) -> list[dict[str, str]]:
        """The accounting records FreeRADIUS wrote so far."""
        if not self.detail_path.exists():
            return []
        return parse_detail(self.detail_path.read_text(errors="replace"))

    # -- configuration -------------------------------------------------------------------------

    def write_config(self) -> None:
        d = self.dir
        (d / "radiusd.conf").write_text(self._radiusd_conf())
        (d / "users").write_text(self._users())
        if self.tls is not None:
            for filename, data in (
                ("server.pem", self.tls.cert_pem),
                ("server.key", self.tls.key_pem),
                ("ca.pem", self.tls.ca_pem),
            ):
                path = d / filename
                path.write_bytes(data)
                path.chmod(0o600)

    def _users(self) -> str:
        out = []
        for user in self.users:
            line = f"{_quote(user.name)}\tCleartext-Password := {_quote(user.password)}"
            items = [f"\t{name} = {value}" for name, value in user.reply]
            out.append(line + ("\n" + ",\n".join(items) if items else "") + "\n")
        return "\n".join(out)

    def _mschapv2_conf(self) -> str:
        return "\n\t\tmschapv2 {\n\t\t}" if self.mschapv2 else ""

    def _tls_conf(self) -> str:
        if self.tls is None:
            return ""
        d = self.dir
        return f"""
		tls-config tls-common {{
			private_key_file = {d}/server.key
			certificate_file = {d}/server.pem
			ca_file = {d}/ca.pem
			auto_chain = no
			fragment_size = {self.tls_fragment_size}
			include_length = yes
			cipher_list = "DEFAULT"
			tls_min_version = "1.2"
			tls_max_version = "{self.tls_max_version}"
			ecdh_curve = ""
			cache {{
				enable = no
			}}
			ocsp {{
				enable = no
			}}
		}}
		tls {{
			tls = tls-common
		}}"""

    def _radiusd_conf(self) -> str:
        d = self.dir
        secret = self.secret.decode("ascii")
        return f"""# pyipsec test FreeRADIUS ({self.ns.name})
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
logdir = {d}
raddbdir = {d}
radacctdir = {d}
name = radiusd
confdir = {d}
modconfdir = {d}
certdir = {d}
cadir = {d}
run_dir = {d}
db_dir = {d}
libdir = /usr/lib/freeradius
pidfile = {d}/radiusd.pid
max_request_time = 30
cleanup_delay = 5
max_requests = 1024
hostname_lookups = no
log {{
	destination = stdout
	colourise = no
	auth = yes
	auth_badpass = no
	auth_goodpass = no
}}
security {{
	allow_core_dumps = no
	max_attributes = 200
	reject_delay = 0
	status_server = no
}}
proxy_requests = no
thread pool {{
	start_servers = 2
	max_servers = 4
	min_spare_servers = 1
	max_spare_servers = 2
	max_requests_per_server = 0
}}
client gateway {{
	ipaddr = {self.client}
	secret = {_quote(secret)}
	require_message_authenticator = yes
}}
modules {{
	files {{
		filename = {d}/users
	}}
	mschap {{
	}}
	eap {{
		default_eap_type = {self.default_eap_type}
		timer_expire = 60
		max_sessions = 256{self._mschapv2_conf()}{self._tls_conf()}
	}}
	detail {{
		filename = {d}/detail
		permissions = 0600
		header = "%t"
	}}
}}
server default {{
	listen {{
		type = auth
		ipaddr = {self.listen}
		port = {self.auth_port}
	}}
	listen {{
		type = acct
		ipaddr = {self.listen}
		port = {self.acct_port}
	}}
	authorize {{
		eap {{
			ok = return
		}}
		files
	}}
	authenticate {{
		Auth-Type MS-CHAP {{
			mschap
		}}
		eap
	}}
	preacct {{
	}}
	accounting {{
		detail
	}}
	post-auth {{
	}}
}}
"""

    # -- process -------------------------------------------------------------------------------

    def start(self, *, timeout: float = 10.0) -> None:
        """Write the configuration, start FreeRADIUS and wait until it is ready."""
        self.write_config()
        argv = [FREERADIUS, "-f", "-d", str(self.dir), "-l", "stdout", *(["-xx"] if self.debug else [])]
        self._proc = self.ns.popen(argv, stderr=subprocess.STDOUT)
        self._reader = threading.Thread(target=self._read, name=f"freeradius-{self.ns.name}", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.02):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self._reader.join(timeout=1)
                raise FreeRadiusError(f"FreeRADIUS did not start (exit {self._proc.poll()}):\n{self.log}")

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        with contextlib.ExitStack() as stack:
            copy = stack.enter_context(self.log_path.open("a")) if self.log_path is not None else None
            for raw in self._proc.stdout:
                line = raw.decode(errors="replace").rstrip()
                self._lines.append(line)
                if copy is not None:
                    copy.write(line + "\n")
                    copy.flush()
                if _READY in line:
                    self._ready.set()

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove the configuration directory."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self._reader is not None:
            self._reader.join(timeout=2)
            self._reader = None
        shutil.rmtree(self.dir, ignore_errors=True)


# -- driving an EAP conversation through pyipsec.radius ----------------------------------------


async def relay_eap(
    client: RadiusClient,
    peer: EapPeer,
    user: str,
    *,
    identity_request: bytes = IDENTITY_REQUEST,
    session: str = "sess-1",
    calling_station: str = "192.0.2.2[4500]",
    called_station: str = "192.0.2.1[4500]",
    nas_port: int = 7,
    rounds: int = 100,
) -> EapRelayAnswer:
    """Relay ``peer``'s whole conversation as the gateway does (RFC 3579): its EAP-Response/
    Identity first, then each EAP-Request of an Access-Challenge to the peer and its answer back
    with the Challenge's State. Returns the first answer that is not a CHALLENGE (ACCEPT, REJECT
    or TIMEOUT), after handing its EAP-Success or -Failure to the peer."""
    message = peer.process(identity_request)
    state: bytes | None = None
    for _ in range(rounds):
        if message is None:
            raise AssertionError("the peer stopped answering in the middle of the conversation")
        answer = await client.eap(
            user=user,
            eap=message,
            state=state,
            session=session,
            calling_station=calling_station,
            called_station=called_station,
            nas_port=nas_port,
        )
        if answer.kind is not RadiusAnswerKind.CHALLENGE:
            if answer.eap and peer.process(answer.eap) is not None:
                raise AssertionError("the peer answered the final EAP-Success or -Failure")
            return answer
        message, state = peer.process(answer.eap), answer.state
    raise AssertionError(f"the conversation did not end within {rounds} rounds")
