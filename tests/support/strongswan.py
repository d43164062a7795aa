"""strongSwan (Debian's charon 5.9.8) as a test peer inside a network namespace, driven over vici.

Theory of operation
-------------------
Each :class:`Charon` gets a directory of its own holding ``strongswan.conf``, ``charon.log``,
``charon.out`` (stdout/stderr), the vici socket, a ``resolv.conf`` for the resolve plugin and a
``run/`` directory. It is started as

    ip netns exec NS unshare --mount --propagation private \\
        sh -c 'mount --bind DIR/run /run && exec /usr/lib/ipsec/charon'

with ``STRONGSWAN_CONF=DIR/strongswan.conf``: the private ``/run`` lets several charons (which all
write ``/run/charon.pid``) run at once, and every step ``exec``\\ s, so the PID we hold is charon's
own and :meth:`Charon.stop` stops it by that PID. The configuration follows shared/STRONGSWAN.md:
``load_modular = no`` and an explicit plugin list in which ``kernel-libipsec`` (userspace ESP over
a TUN device ``ipsec0``; this kernel has no XFRM) precedes ``kernel-netlink``; the OpenSSL legacy
provider is loaded for MD4 (EAP-MSCHAPv2). libipsec always encapsulates ESP in UDP 4500.

:meth:`Charon.start` returns once the vici socket answers ``version``. The rest of the API maps
onto vici commands; connection, secret and pool dicts have the swanctl/vici shape (e.g.
``{"conn": {"local_addrs": [...], "local": {"auth": "psk"}, "children": {...}}}``), values
being strings, lists or nested dicts. Results of ``list-sas`` come back as :class:`IkeSa` and
:class:`ChildSa` records with the decoded vici dict kept in ``raw``.

The ``vici`` package is imported lazily so that this module can be imported (and the root tiers
skipped) on machines without it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final, cast

from tests.support.netns import Namespace
from tests.support.vici_sa import (
    ChildSa,
    IkeSa,
    ViciIn,
    ViciOut,
    decode_vici,
    encode_vici,
    str_field,
)

if TYPE_CHECKING:
    from vici import Session  # type: ignore[import-untyped,unused-ignore]

__all__ = [
    "CHARON",
    "DEFAULT_PLUGINS",
    "Charon",
    "CharonError",
    "CharonFactory",
    "ChildSa",
    "ConfTree",
    "IkeSa",
    "ViciIn",
    "ViciOut",
    "charon_available",
    "psk_connection",
    "render_conf",
]

CHARON: Final = Path("/usr/lib/ipsec/charon")
PLUGIN_DIR: Final = Path("/usr/lib/ipsec/plugins")

#: Plugins loaded by every instance, in priority order. kernel-libipsec must precede
#: kernel-netlink (STRONGSWAN.md point 1); openssl comes first among the crypto providers,
#: gcrypt is the MD4 fallback.
DEFAULT_PLUGINS: Final[tuple[str, ...]] = (
    "random",
    "nonce",
    "openssl",
    "aes",
    "sha1",
    "sha2",
    "md5",
    "hmac",
    "gcm",
    "ccm",
    "ctr",
    "cmac",
    "xcbc",
    "chapoly",
    "curve25519",
    "gmp",
    "gcrypt",
    "kdf",
    "x509",
    "pem",
    "pkcs1",
    "pkcs8",
    "pubkey",
    "revocation",
    "constraints",
    "attr",
    "resolve",
    "kernel-libipsec",
    "kernel-netlink",
    "socket-default",
    "vici",
    "eap-identity",
    "eap-mschapv2",
)

ConfTree = Mapping[str, "str | int | ConfTree"]
"""A strongswan.conf section: key → value or subsection."""


class CharonError(RuntimeError):
    """charon failed to start, or a vici command failed; the message names the log file."""


def charon_available() -> str | None:
    """None when charon, the kernel-libipsec plugin, /dev/net/tun and vici are usable, else why not."""
    if not CHARON.exists():
        return f"{CHARON} is missing (bash scripts/install-deps.sh installs strongswan-charon)"
    for plugin in ("kernel-libipsec", "openssl", "vici"):
        if not (PLUGIN_DIR / f"libstrongswan-{plugin}.so").exists():
            return f"strongSwan plugin {plugin} is missing (bash scripts/install-deps.sh)"
    if not Path("/dev/net/tun").exists():
        return "/dev/net/tun is missing (kernel-libipsec needs TUN)"
    try:
        import vici  # type: ignore[import-untyped,unused-ignore]  # noqa: F401, PLC0415
    except ImportError:
        return "the vici package is missing (pip install -e '.[test]')"
    return None


def _vici_errors() -> tuple[type[Exception], ...]:
    """What a failed vici command raises: a refused command, a protocol or a socket error."""
    import vici.exception as ve  # type: ignore[import-untyped,unused-ignore]  # noqa: PLC0415

    return (ve.CommandException, ve.SessionException, ve.DeserializationException, OSError)


def render_conf(tree: ConfTree, indent: int = 0) -> str:
    """Render a strongswan.conf section tree."""
    pad = "    " * indent
    out: list[str] = []
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.append(f"{pad}{key} {{\n{render_conf(value, indent + 1)}{pad}}}\n")
        else:
            text = str(value)
            if "\n" in text or "}" in text or "{" in text:
                raise ValueError(f"strongswan.conf value for {key!r} cannot hold {text!r}")
            out.append(f"{pad}{key} = {text}\n")
    return "".join(out)


def _merge_dotted(tree: dict[str, object], settings: Mapping[str, str | int]) -> None:
    """Merge ``{"charon.plugins.x.y": v}`` style overrides into a nested dict."""
    for dotted, value in settings.items():
        node = tree
        *path, leaf = dotted.split(".")
        for part in path:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"setting {dotted!r} descends into the value {part!r}")
            node = child
        node[leaf] = value


class Charon:
    """One charon daemon in namespace ``ns``, configured in and logging to ``directory``.

    ``settings`` override or add strongswan.conf keys in dotted form (e.g.
    ``{"charon.block_threshold": 50}``); ``log_level`` applies to the ike, chd, cfg, knl and enc
    subsystems, at most 1 to net and esp (which log each packet at 2), 1 to the others, 0 to job.
    """

    def __init__(
        self,
        ns: Namespace,
        directory: Path,
        *,
        name: str = "charon",
        settings: Mapping[str, str | int] | None = None,
        plugins: Sequence[str] = DEFAULT_PLUGINS,
        log_level: int = 2,
    ) -> None:
        self.ns = ns
        self.name = name
        self.directory = directory
        self.conf_path = directory / "strongswan.conf"
        self.log_path = directory / "charon.log"
        self.out_path = directory / "charon.out"
        self.vici_path = directory / "charon.vici"
        self.run_dir = directory / "run"
        self.plugins = tuple(plugins)
        self.log_level = log_level
        self.settings = dict(settings or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self._session: Session | None = None

    def __repr__(self) -> str:
        return f"Charon({self.name!r}, ns={self.ns.name!r}, log={str(self.log_path)!r})"

    def __enter__(self) -> Charon:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    # -- lifecycle ---------------------------------------------------------------------------

    def config_tree(self) -> dict[str, object]:
        """The strongswan.conf content as a nested dict (before :attr:`settings` overrides)."""
        d = self.directory
        charon: dict[str, object] = {
            "load_modular": "no",
            "load": " ".join(self.plugins),
            "install_routes": "yes",
            "filelog": {
                "main": {
                    "path": str(self.log_path),
                    "time_format": "%T",
                    "ike_name": "yes",
                    "append": "no",
                    "flush_line": "yes",
                    "default": "1",
                    **dict.fromkeys(("ike", "chd", "cfg", "knl", "enc"), str(self.log_level)),
                    # at 2 these log every ESP packet: costly at tens of thousands a second
                    **dict.fromkeys(("net", "esp"), str(min(self.log_level, 1))),
                    "job": "0",
                },
            },
            "syslog": {"daemon": {"default": "-1"}},
            "plugins": {
                "vici": {"socket": f"unix://{self.vici_path}"},
                "openssl": {"load_legacy": "yes"},
                "resolve": {"file": str(d / "resolv.conf")},
                "kernel-libipsec": {"allow_peer_ts": "no"},
            },
        }
        return {"charon": charon}

    def write_config(self) -> None:
        tree = self.config_tree()
        _merge_dotted(tree, self.settings)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(exist_ok=True)
        self.conf_path.write_text(render_conf(cast(ConfTree, tree)))

    def start(self, *, timeout: float = 10.0) -> Charon:
        """Write the config, start charon and wait until vici answers."""
        if self.proc is not None:
            raise CharonError(f"{self!r} already started")
        if len(str(self.vici_path)) > 100:  # sun_path holds 108 bytes
            raise CharonError(f"{self.vici_path} is too long for a UNIX socket path; use a shorter directory")
        self.write_config()
        for stale in (self.vici_path, self.log_path):
            stale.unlink(missing_ok=True)
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "STRONGSWAN_CONF": str(self.conf_path),
        }
        script = f"mount --bind '{self.run_dir}' /run && exec '{CHARON}'"
        with self.out_path.open("wb") as out:
            self.proc = self.ns.popen(
                ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise CharonError(
                    f"{self!r} exited with {self.proc.returncode} while starting\n{self.describe()}"
                )
            if self.vici_path.exists():
                try:
                    self._connect(timeout=2.0).version()
                except OSError:
                    self._close_session()
                else:
                    break
            if time.monotonic() >= deadline:
                self.stop()
                raise CharonError(f"{self!r}: vici did not answer within {timeout} s\n{self.describe()}")
            time.sleep(0.02)
        return self

    def stop(self, *, timeout: float = 5.0) -> None:
        """Stop charon by its PID (SIGTERM, then SIGKILL after ``timeout``); idempotent."""
        self._close_session()
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        """The whole charon log (empty if it does not exist yet)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def describe(self, lines: int = 25) -> str:
        """Where the logs are, plus their last ``lines`` lines: for failure messages."""
        parts = [f"charon {self.name!r} in {self.ns.name}: log {self.log_path}, output {self.out_path}"]
        for path in (self.log_path, self.out_path):
            try:
                tail = path.read_text(errors="replace").splitlines()[-lines:]
            except FileNotFoundError:
                continue
            if tail:
                parts.append(f"--- last lines of {path.name} ---")
                parts.extend(tail)
        return "\n".join(parts)

    # -- vici --------------------------------------------------------------------------------

    def _connect(self, *, timeout: float = 30.0) -> Session:
        if self._session is None:
            from vici import Session  # type: ignore[import-untyped,unused-ignore]  # noqa: PLC0415

            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(str(self.vici_path))
            except OSError:
                sock.close()
                raise
            self._session = Session(sock)
        return self._session

    def _close_session(self) -> None:
        if self._session is not None:
            self._session.transport.socket.close()
            self._session = None

    def session(self) -> Session:
        """The (lazily connected) vici session, for commands this class does not wrap."""
        return self._connect()

    def _call(self, what: str, fn_name: str, *args: object) -> object:
        try:
            return getattr(self._connect(), fn_name)(*args)
        except _vici_errors() as exc:
            self._close_session()
            raise CharonError(f"{what} failed: {exc}\n{self.describe()}") from exc

    def _stream(
        self, what: str, fn_name: str, message: Mapping[str, object] | None, *, io_timeout: float = 30.0
    ) -> list[dict[str, ViciOut]]:
        try:
            session = self._connect()
            session.transport.socket.settimeout(io_timeout)
            gen = getattr(session, fn_name)(message)
            out: list[dict[str, ViciOut]] = []
            for item in gen:
                decoded = decode_vici(item)
                assert isinstance(decoded, dict)
                out.append(decoded)
            return out
        except _vici_errors() as exc:
            self._close_session()
            raise CharonError(f"{what} failed: {exc}\n{self.describe()}") from exc

    def version(self) -> dict[str, ViciOut]:
        result = decode_vici(self._call("version", "version"))
        assert isinstance(result, dict)
        return result

    def load_conn(self, conns: Mapping[str, Mapping[str, ViciIn]]) -> None:
        """Load connections given as ``{name: {swanctl connection keys}}``."""
        for name, conn in conns.items():
            self._call(f"load-conn {name}", "load_conn", {name: encode_vici(conn)})

    def unload_conn(self, name: str) -> None:
        self._call(f"unload-conn {name}", "unload_conn", {"name": name})

    def load_shared(
        self, data: str | bytes, *, owners: Sequence[str] = (), type: str = "IKE", id: str | None = None
    ) -> None:
        """Load a shared secret (``type`` IKE, EAP, XAUTH, NTLM) for the identities ``owners``."""
        msg: dict[str, object] = {"type": type, "data": data, "owners": list(owners)}
        if id is not None:
            msg["id"] = id
        self._call(f"load-shared {type}", "load_shared", msg)

    def load_cert(self, pem: str | bytes, *, type: str = "X509", flag: str | None = None) -> None:
        """Load a certificate; ``flag`` is e.g. ``CA`` for a trust anchor."""
        data = pem.encode() if isinstance(pem, str) else pem
        msg: dict[str, object] = {"type": type, "data": data}
        if flag is not None:
            msg["flag"] = flag
        self._call(f"load-cert {type}", "load_cert", msg)

    def load_key(self, pem: str | bytes, *, type: str = "any") -> None:
        """Load a private key (``type`` any, rsa, ecdsa, ed25519, …)."""
        data = pem.encode() if isinstance(pem, str) else pem
        self._call(f"load-key {type}", "load_key", {"type": type, "data": data})

    def load_pool(self, pools: Mapping[str, Mapping[str, ViciIn]]) -> None:
        """Load virtual-IP pools given as ``{name: {"addrs": "10.0.0.0/24", ...}}``."""
        for name, pool in pools.items():
            self._call(f"load-pool {name}", "load_pool", {name: encode_vici(pool)})

    def initiate(
        self, child: str | None = None, ike: str | None = None, *, timeout: float = 10.0
    ) -> list[str]:
        """Initiate ``child`` (and/or ``ike``); block until done; return charon's control log lines."""
        msg: dict[str, object] = {"timeout": str(int(timeout * 1000)), "init-limits": "no", "loglevel": "1"}
        if child is not None:
            msg["child"] = child
        if ike is not None:
            msg["ike"] = ike
        events = self._stream(f"initiate {ike}/{child}", "initiate", msg, io_timeout=max(30.0, timeout + 5))
        return [str_field(e, "msg") for e in events]

    def terminate(
        self,
        *,
        ike: str | None = None,
        child: str | None = None,
        ike_id: int | None = None,
        child_id: int | None = None,
        force: bool = False,
        timeout: float = 10.0,
    ) -> list[str]:
        """Terminate SAs by name or unique id; block until done; return the control log lines."""
        msg: dict[str, object] = {"timeout": str(int(timeout * 1000)), "loglevel": "1"}
        for key, value in (("ike", ike), ("child", child), ("ike-id", ike_id), ("child-id", child_id)):
            if value is not None:
                msg[key] = str(value)
        if force:
            msg["force"] = "yes"
        events = self._stream(f"terminate {ike}/{child}", "terminate", msg, io_timeout=max(30.0, timeout + 5))
        return [str_field(e, "msg") for e in events]

    def list_sas(self, ike: str | None = None) -> list[IkeSa]:
        """Current IKE SAs (optionally only those of connection ``ike``) with their children."""
        filters = {"ike": ike} if ike is not None else None
        result: list[IkeSa] = []
        for entry in self._stream("list-sas", "list_sas", filters):
            for name, sa in entry.items():
                if isinstance(sa, dict):
                    result.append(IkeSa.from_vici(name, sa))
        return result

    def wait_for_sa(
        self,
        ike: str,
        *,
        child: str | None = None,
        state: str = "ESTABLISHED",
        child_state: str = "INSTALLED",
        timeout: float = 10.0,
    ) -> IkeSa:
        """Poll until an IKE SA of ``ike`` is in ``state`` (and has ``child`` in ``child_state``)."""
        deadline = time.monotonic() + timeout
        while True:
            for sa in self.list_sas(ike):
                if sa.state != state:
                    continue
                if child is None:
                    return sa
                c = sa.child(child)
                if c is not None and c.state == child_state:
                    return sa
            if not self.running:
                raise CharonError(f"{self!r} is not running\n{self.describe()}")
            if time.monotonic() >= deadline:
                raise CharonError(f"no IKE SA {ike!r}/{child!r} {state} after {timeout} s\n{self.describe()}")
            time.sleep(0.05)

    def wait_for_no_sa(self, ike: str | None = None, *, timeout: float = 10.0) -> None:
        """Poll until there is no IKE SA (of connection ``ike``, if given)."""
        deadline = time.monotonic() + timeout
        while self.list_sas(ike):
            if time.monotonic() >= deadline:
                raise CharonError(f"IKE SA {ike!r} still present after {timeout} s\n{self.describe()}")
            time.sleep(0.05)


class CharonFactory:
    """``factory(ns, "left")`` starts a :class:`Charon` in ``base/left``; :meth:`stop_all` stops them.

    ``register_log`` is told each instance's log files (the ``debug_logs`` fixture shows them if
    the test fails). The ``charon_factory`` fixture wraps this.
    """

    def __init__(self, base: Path, register_log: Callable[[Path], None]) -> None:
        self.base = base
        self.register_log = register_log
        self.started: list[Charon] = []

    def __call__(
        self,
        ns: Namespace,
        name: str,
        *,
        settings: Mapping[str, str | int] | None = None,
        plugins: Sequence[str] = DEFAULT_PLUGINS,
        log_level: int = 2,
        timeout: float = 10.0,
    ) -> Charon:
        charon = Charon(
            ns, self.base / name, name=name, settings=settings, plugins=plugins, log_level=log_level
        )
        self.register_log(charon.log_path)
        self.register_log(charon.out_path)
        self.started.append(charon)
        return charon.start(timeout=timeout)

    def stop_all(self) -> None:
        for charon in reversed(self.started):
            charon.stop()


def psk_connection(
    *,
    local_addr: str,
    remote_addr: str,
    local_id: str,
    remote_id: str,
    local_ts: Sequence[str],
    remote_ts: Sequence[str],
    child: str = "net",
    proposals: Sequence[str] = ("aes256gcm16-prfsha256-ecp256",),
    esp_proposals: Sequence[str] = ("aes256gcm16",),
    extra: Mapping[str, ViciIn] | None = None,
    child_extra: Mapping[str, ViciIn] | None = None,
) -> dict[str, ViciIn]:
    """A swanctl-shaped PSK connection with one tunnel-mode child (MOBIKE off, no auto-start).

    Pass the result as ``charon.load_conn({"name": psk_connection(...)})``; ``extra`` and
    ``child_extra`` add or override connection and child keys.
    """
    child_conf: dict[str, ViciIn] = {
        "local_ts": list(local_ts),
        "remote_ts": list(remote_ts),
        "esp_proposals": list(esp_proposals),
        "mode": "tunnel",
        "start_action": "none",
    }
    child_conf.update(child_extra or {})
    conn: dict[str, ViciIn] = {
        "version": "2",
        "local_addrs": [local_addr],
        "remote_addrs": [remote_addr],
        "proposals": list(proposals),
        "mobike": "no",
        "local": {"auth": "psk", "id": local_id},
        "remote": {"auth": "psk", "id": remote_id},
        "children": {child: child_conf},
    }
    conn.update(extra or {})
    return conn
