"""Network-namespace topologies for the root test tiers (integration, interop).

Theory of operation
-------------------
A :class:`Topology` owns a set of network namespaces named ``pyi-<tag>-<role>``, where ``<tag>``
is a short random suffix shared by all namespaces of one topology, so parallel test runs never
collide. Links are veth pairs created *directly inside* their two namespaces (``ip -n A link
add ... peer ... netns B``), so no interface name ever appears in the root namespace. Each link
gets its own /24 from 10.231.0.0/16 and /64 from fd00:231::/48; side ``a`` is host 1, side ``b``
host 2. IPv6 runs without DAD and :meth:`Topology.link` waits until IPv6 is up on both ends, so
addresses are usable at once. Addresses repeat in every topology: namespaces isolate them, and
no traffic ever leaves this machine.

Cleanup order on :meth:`Topology.close` (also run on failure or interruption through the pytest
fixture, a ``with`` block or ``atexit``): first the processes started through
:meth:`Namespace.popen` (their process groups, SIGTERM then SIGKILL), then any process still
living inside one of the namespaces (necessarily ours), then the namespaces themselves; veth
pairs vanish with them.

While a topology is alive it holds an exclusive ``flock`` on ``/run/pyipsec-netns/<tag>.lock``.
:func:`cleanup_stale` removes ``pyi-*`` namespaces whose lock is free (their run crashed or was
killed) and leaves those of concurrent runs alone.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import ipaddress
import os
import secrets
import shlex
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Final

__all__ = [
    "LOCK_DIR",
    "NETNS_DIR",
    "PREFIX",
    "Link",
    "NatTopology",
    "Namespace",
    "NetnsError",
    "Topology",
    "TwoHosts",
    "cleanup_stale",
    "list_namespaces",
    "nat_topology",
    "two_hosts",
]

PREFIX: Final = "pyi-"
LOCK_DIR: Final = Path("/run/pyipsec-netns")
NETNS_DIR: Final = Path("/run/netns")

#: 10.231.<link>.<host>/24 and fd00:231:0:<link>::<host>/64 (private test ranges).
V4_BASE: Final = ipaddress.IPv4Network("10.231.0.0/16")
V6_BASE: Final = ipaddress.IPv6Network("fd00:231::/48")

Cmd = str | Sequence[str]


class NetnsError(RuntimeError):
    """A command that builds or tears down a topology failed."""


def _argv(cmd: Cmd) -> list[str]:
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def _host(
    argv: Sequence[str], *, check: bool = True, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    """Run a command in the root namespace."""
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise NetnsError(
            f"{shlex.join(argv)} exited {proc.returncode}: {proc.stderr.strip() or proc.stdout.strip()}"
        )
    return proc


def list_namespaces() -> list[str]:
    """Names of all named network namespaces on the machine."""
    out = _host(["ip", "netns", "list"]).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _ns_pids(name: str) -> list[int]:
    proc = _host(["ip", "netns", "pids", name], check=False)
    return [int(p) for p in proc.stdout.split() if p.isdigit()]


def _kill_pids(pids: Sequence[int], *, grace: float = 3.0) -> None:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL whatever is left."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _alive(p)]
        if alive:
            time.sleep(0.02)
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # A zombie has exited already; its parent (maybe us) reaps it.
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _destroy_namespace(name: str) -> None:
    _kill_pids(_ns_pids(name))
    if (NETNS_DIR / name).exists():
        _host(["ip", "netns", "delete", name], check=False)


def cleanup_stale() -> list[str]:
    """Delete ``pyi-*`` namespaces left behind by crashed runs; return their names.

    A namespace is stale when no live process holds its topology lock. Namespaces of topologies
    that are alive (in this or a concurrent run) are not touched.
    """
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    removed: list[str] = []
    by_tag: dict[str, list[str]] = {}
    for name in list_namespaces():
        if name.startswith(PREFIX):
            tag = name[len(PREFIX) :].split("-", 1)[0]
            by_tag.setdefault(tag, []).append(name)
    tags = set(by_tag) | {p.stem for p in LOCK_DIR.glob("*.lock")}
    for tag in sorted(tags):
        lock_path = LOCK_DIR / f"{tag}.lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live topology owns it
            for name in by_tag.get(tag, []):
                _destroy_namespace(name)
                removed.append(name)
            lock_path.unlink(missing_ok=True)
        finally:
            os.close(fd)
    return removed


class Namespace:
    """One network namespace of a :class:`Topology`; commands run inside it."""

    def __init__(self, topology: Topology, name: str, role: str) -> None:
        self.topology = topology
        self.name = name
        self.role = role
        self._procs: list[subprocess.Popen[bytes]] = []
        self._ifcount = 0

    def __repr__(self) -> str:
        return f"Namespace({self.name!r})"

    def _wrap(self, cmd: Cmd) -> list[str]:
        return ["ip", "netns", "exec", self.name, *_argv(cmd)]

    def run(
        self,
        cmd: Cmd,
        *,
        check: bool = True,
        timeout: float = 30.0,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` (argv or a shell-quoted string, no shell) in the namespace; capture text output.

        With ``check`` a non-zero exit raises :class:`NetnsError` carrying stderr.
        """
        argv = self._wrap(cmd)
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input, check=False)
        if check and proc.returncode != 0:
            raise NetnsError(
                f"[{self.name}] {shlex.join(argv[4:])} exited {proc.returncode}: "
                f"{proc.stderr.strip() or proc.stdout.strip()}"
            )
        return proc

    def popen(
        self,
        cmd: Cmd,
        *,
        env: dict[str, str] | None = None,
        stdin: int | IO[bytes] | None = subprocess.DEVNULL,
        stdout: int | IO[bytes] | None = subprocess.PIPE,
        stderr: int | IO[bytes] | None = subprocess.PIPE,
    ) -> subprocess.Popen[bytes]:
        """Start ``cmd`` in the namespace in its own process group; it is killed on teardown.

        ``ip netns exec`` execs the command, so the returned ``pid`` is the command's own.
        """
        proc = subprocess.Popen(
            self._wrap(cmd),
            env=env,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
        self._procs.append(proc)
        return proc

    def ping(self, addr: str, *, count: int = 1, timeout: float = 2.0, size: int | None = None) -> bool:
        """Send ``count`` echo requests to ``addr`` (v4 or v6); True if at least one was answered.

        ``timeout`` bounds the whole command. Only ever point this at addresses of the topology.
        """
        argv = ["ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", str(max(1, round(timeout)))]
        argv += ["-w", str(max(1, round(timeout)))]
        if size is not None:
            argv += ["-s", str(size)]
        argv.append(addr)
        return self.run(argv, check=False, timeout=timeout + 5).returncode == 0

    def wait_ping(self, addr: str, *, timeout: float = 5.0) -> bool:
        """Ping ``addr`` once a round until it answers or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while True:
            if self.ping(addr, count=1, timeout=1.0):
                return True
            if time.monotonic() >= deadline:
                return False

    def sysctl(self, key: str, value: str) -> None:
        """Set a per-namespace sysctl (``net.*``)."""
        self.run(["sysctl", "-q", "-w", f"{key}={value}"])

    def add_address(self, ifname: str, cidr: str) -> None:
        """Add ``cidr`` to ``ifname`` (IPv6 without duplicate address detection)."""
        extra = ["nodad"] if ":" in cidr else []
        self.run(["ip", "addr", "add", cidr, "dev", ifname, *extra])

    def add_route(self, dst: str, via: str) -> None:
        """Add a route in the main table (``dst`` may be ``default``; family taken from ``via``)."""
        family = "-6" if ":" in via else "-4"
        self.run(["ip", family, "route", "add", dst, "via", via])

    def wait_ipv6_ready(self, ifname: str, *, timeout: float = 5.0) -> None:
        """Wait until IPv6 runs on ``ifname`` (a usable link-local address exists).

        IPv6 starts on a new veth only once the kernel's link watcher has seen the carrier, up to
        a second after ``ip link set up``; a neighbour solicitation sent before that is lost and
        the kernel then waits a full second before it tries again.
        """
        deadline = time.monotonic() + timeout
        while True:
            out = self.run(["ip", "-6", "-o", "addr", "show", "dev", ifname, "scope", "link"]).stdout
            if out.strip() and "tentative" not in out:
                return
            if time.monotonic() >= deadline:
                raise NetnsError(f"[{self.name}] IPv6 did not come up on {ifname}")
            time.sleep(0.01)

    def next_ifname(self) -> str:
        name = f"eth{self._ifcount}"
        self._ifcount += 1
        return name

    def kill_processes(self) -> None:
        """Stop the processes started with :meth:`popen`, then anything else in the namespace."""
        procs, self._procs = self._procs, []
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 3.0
        for proc in procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        _kill_pids(_ns_pids(self.name))


@dataclass(frozen=True, slots=True)
class Link:
    """A veth pair between namespaces ``a`` (host 1) and ``b`` (host 2) on subnet ``index``."""

    a: Namespace
    b: Namespace
    a_if: str
    b_if: str
    index: int
    a_ip4: ipaddress.IPv4Interface
    b_ip4: ipaddress.IPv4Interface
    a_ip6: ipaddress.IPv6Interface
    b_ip6: ipaddress.IPv6Interface

    @property
    def a_addr(self) -> str:
        return str(self.a_ip4.ip)

    @property
    def b_addr(self) -> str:
        return str(self.b_ip4.ip)

    @property
    def a_addr6(self) -> str:
        return str(self.a_ip6.ip)

    @property
    def b_addr6(self) -> str:
        return str(self.b_ip6.ip)


class Topology:
    """Namespaces, veth links and NAT for one test; a context manager that removes it all."""

    def __init__(self, *, tag: str | None = None) -> None:
        self.tag = tag or secrets.token_hex(3)
        self.namespaces: list[Namespace] = []
        self.links: list[Link] = []
        self._closed = False
        LOCK_DIR.mkdir(parents=True, exist_ok=True)
        self._lock_path = LOCK_DIR / f"{self.tag}.lock"
        self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise NetnsError(f"topology tag {self.tag!r} is in use") from None
        atexit.register(self.close)

    def __enter__(self) -> Topology:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Topology(tag={self.tag!r}, namespaces={[n.name for n in self.namespaces]})"

    def namespace(self, role: str) -> Namespace:
        """Create namespace ``pyi-<tag>-<role>`` with ``lo`` up."""
        if self._closed:
            raise NetnsError("topology is closed")
        name = f"{PREFIX}{self.tag}-{role}"
        _host(["ip", "netns", "add", name])
        ns = Namespace(self, name, role)
        self.namespaces.append(ns)
        ns.run(["ip", "link", "set", "lo", "up"])
        # No duplicate address detection: link-local addresses (used for neighbour discovery)
        # would otherwise stay tentative for a second or two after a link comes up.
        ns.sysctl("net.ipv6.conf.default.accept_dad", "0")
        ns.sysctl("net.ipv6.conf.all.accept_dad", "0")
        return ns

    def link(self, a: Namespace, b: Namespace, *, mtu: int | None = None) -> Link:
        """Connect ``a`` and ``b`` with a veth pair on the next free subnet; both ends up."""
        index = len(self.links) + 1
        if index > 255:
            raise NetnsError("too many links")
        a_if, b_if = a.next_ifname(), b.next_ifname()
        _host(
            ["ip", "-n", a.name, "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", b.name]
        )
        v4 = list(V4_BASE.subnets(new_prefix=24))[index]
        v6 = ipaddress.IPv6Network((int(V6_BASE.network_address) + (index << 64), 64))
        link = Link(
            a=a,
            b=b,
            a_if=a_if,
            b_if=b_if,
            index=index,
            a_ip4=ipaddress.IPv4Interface(f"{v4.network_address + 1}/24"),
            b_ip4=ipaddress.IPv4Interface(f"{v4.network_address + 2}/24"),
            a_ip6=ipaddress.IPv6Interface(f"{v6.network_address + 1}/64"),
            b_ip6=ipaddress.IPv6Interface(f"{v6.network_address + 2}/64"),
        )
        for ns, ifname, ip4, ip6 in ((a, a_if, link.a_ip4, link.a_ip6), (b, b_if, link.b_ip4, link.b_ip6)):
            ns.add_address(ifname, str(ip4))
            ns.add_address(ifname, str(ip6))
            if mtu is not None:
                ns.run(["ip", "link", "set", ifname, "mtu", str(mtu)])
            ns.run(["ip", "link", "set", ifname, "up"])
        for ns, ifname in ((a, a_if), (b, b_if)):
            ns.wait_ipv6_ready(ifname)
        self.links.append(link)
        return link

    def enable_nat(self, router: Namespace, outside_if: str) -> None:
        """Make ``router`` forward v4/v6 and masquerade everything leaving ``outside_if``."""
        router.sysctl("net.ipv4.ip_forward", "1")
        router.sysctl("net.ipv6.conf.all.forwarding", "1")
        ruleset = (
            "table inet pyipsec_nat {\n"
            "  chain postrouting {\n"
            "    type nat hook postrouting priority srcnat; policy accept;\n"
            f'    oifname "{outside_if}" masquerade\n'
            "  }\n"
            "}\n"
        )
        router.run(["nft", "-f", "-"], input=ruleset)

    def close(self) -> None:
        """Kill every process in the namespaces, delete them and release the lock (idempotent)."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        errors: list[str] = []
        try:
            for ns in reversed(self.namespaces):
                try:
                    ns.kill_processes()
                except Exception as exc:  # keep tearing down the rest
                    errors.append(f"{ns.name}: {exc}")
            for ns in reversed(self.namespaces):
                try:
                    _destroy_namespace(ns.name)
                except Exception as exc:
                    errors.append(f"{ns.name}: {exc}")
        finally:
            self._lock_path.unlink(missing_ok=True)
            os.close(self._lock_fd)
        left = [ns.name for ns in self.namespaces if (NETNS_DIR / ns.name).exists()]
        if errors or left:
            raise NetnsError(f"topology cleanup incomplete: {errors} left={left}")


@dataclass(frozen=True, slots=True)
class TwoHosts:
    """``left`` (10.231.1.1) and ``right`` (10.231.1.2) on one veth link."""

    topology: Topology
    left: Namespace
    right: Namespace
    link: Link


@dataclass(frozen=True, slots=True)
class NatTopology:
    """client – router (masquerade) – server.

    ``inside`` links router (a, 10.231.1.1) and client (b, 10.231.1.2); ``outside`` links router
    (a, 10.231.2.1) and server (b, 10.231.2.2). The client routes everything via the router; the
    server has no route to the inside subnet, so it can only ever answer the router's address.
    """

    topology: Topology
    client: Namespace
    router: Namespace
    server: Namespace
    inside: Link
    outside: Link


def two_hosts(topology: Topology) -> TwoHosts:
    """Build the two-host topology inside ``topology``."""
    left = topology.namespace("left")
    right = topology.namespace("right")
    return TwoHosts(topology, left, right, topology.link(left, right))


def nat_topology(topology: Topology) -> NatTopology:
    """Build client – NAT router – server inside ``topology``."""
    client = topology.namespace("client")
    router = topology.namespace("router")
    server = topology.namespace("server")
    inside = topology.link(router, client)
    outside = topology.link(router, server)
    client.add_route("default", inside.a_addr)
    client.add_route("default", inside.a_addr6)
    topology.enable_nat(router, outside.a_if)
    return NatTopology(topology, client, router, server, inside, outside)
