"""The namespace harness itself: links, NAT and cleanup (tests/support/netns.py)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.support.netns import (
    LOCK_DIR,
    NETNS_DIR,
    NatTopology,
    NetnsError,
    Topology,
    TwoHosts,
    cleanup_stale,
    list_namespaces,
    nat_topology,
    two_hosts,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

# A UDP server: prints the source address of the first datagram it gets, echoes it, exits.
UDP_SERVER = textwrap.dedent(
    """
    import socket, sys
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((sys.argv[1], int(sys.argv[2])))
    print("ready", flush=True)
    data, addr = s.recvfrom(100)
    s.sendto(data, addr)
    print(addr[0], addr[1], flush=True)
    """
)
UDP_CLIENT = textwrap.dedent(
    """
    import socket, sys
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.bind(("0.0.0.0", int(sys.argv[3])))
    s.sendto(b"hi", (sys.argv[1], int(sys.argv[2])))
    print(s.recv(100).decode())
    """
)


def _running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def ours(topology: Topology) -> list[str]:
    prefix = f"pyi-{topology.tag}-"
    return sorted(n for n in list_namespaces() if n.startswith(prefix))


def test_two_hosts_ping_v4_and_v6(hosts: TwoHosts) -> None:
    link = hosts.link
    assert ours(hosts.topology) == sorted([hosts.left.name, hosts.right.name])
    assert hosts.left.ping(link.b_addr)
    assert hosts.right.ping(link.a_addr)
    assert hosts.left.ping(link.b_addr6)
    assert hosts.right.ping(link.a_addr6)
    assert hosts.left.run(["ip", "-o", "link", "show", link.a_if]).returncode == 0
    # nothing of the topology shows in the root namespace
    root = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    assert "10.231." not in root
    assert "fd00:231:" not in root


def test_run_reports_failures(hosts: TwoHosts) -> None:
    assert hosts.left.run("false", check=False).returncode == 1
    with pytest.raises(NetnsError, match="exited 1"):
        hosts.left.run("false")


def test_nat_client_reaches_server_which_sees_the_router(nat: NatTopology) -> None:
    server_ip, router_out = nat.outside.b_addr, nat.outside.a_addr
    assert nat.client.ping(server_ip)
    assert nat.client.ping(nat.outside.b_addr6)
    # the server cannot reach the inside: it has no route there (only NAT makes replies work)
    assert not nat.server.ping(nat.inside.b_addr, timeout=1)

    server = nat.server.popen([sys.executable, "-c", UDP_SERVER, server_ip, "4500"])
    assert server.stdout is not None
    assert server.stdout.readline().strip() == b"ready"
    client = nat.client.run([sys.executable, "-c", UDP_CLIENT, server_ip, "4500", "4500"], timeout=10)
    assert client.stdout.strip() == "hi"
    out, _ = server.communicate(timeout=5)
    seen_addr, seen_port = out.decode().split()
    assert seen_addr == router_out  # masqueraded
    assert seen_addr != nat.inside.b_addr
    assert 0 < int(seen_port) < 65536


def test_popen_processes_are_killed_and_namespaces_removed() -> None:
    with Topology() as topo:
        h = two_hosts(topo)
        sleeper = h.left.popen(["sleep", "300"])
        # a process started behind our back inside the namespace is also killed
        h.right.run(["sh", "-c", "sleep 300 >/dev/null 2>&1 &"])
        names = ours(topo)
        assert len(names) == 2
    assert sleeper.poll() is not None
    assert ours(topo) == []
    assert not (LOCK_DIR / f"{topo.tag}.lock").exists()
    for name in names:
        assert not (NETNS_DIR / name).exists()


def test_cleanup_on_exception_and_nat_state() -> None:
    topo = Topology()
    with pytest.raises(RuntimeError, match="boom"), topo:
        nat_topology(topo)
        raise RuntimeError("boom")
    assert ours(topo) == []


CRASHING_RUN = textwrap.dedent(
    """
    import time
    from tests.support.netns import Topology
    topo = Topology()
    ns = topo.namespace("crashed")
    ns.popen(["sleep", "300"])
    print(topo.tag, flush=True)
    time.sleep(300)
    """
)


def test_cleanup_stale_removes_crashed_runs_only() -> None:
    live = Topology()
    crash: subprocess.Popen[bytes] | None = None
    try:
        live.namespace("live")
        # a run that is SIGKILLed with a namespace and a process in it
        crash = subprocess.Popen(
            [sys.executable, "-c", CRASHING_RUN], cwd=REPO, stdout=subprocess.PIPE, start_new_session=True
        )
        assert crash.stdout is not None
        tag = crash.stdout.readline().decode().strip()
        crashed = f"pyi-{tag}-crashed"
        assert crashed in list_namespaces()
        pids = subprocess.run(["ip", "netns", "pids", crashed], capture_output=True, text=True, check=True)
        sleeper = [int(p) for p in pids.stdout.split()]
        assert len(sleeper) == 1
        crash.kill()
        crash.wait()

        # A concurrent test run's cleanup may get there first (or be busy with it): either way
        # the namespace must go.
        removed = cleanup_stale()
        deadline = time.monotonic() + 10
        while crashed not in removed and crashed in list_namespaces() and time.monotonic() < deadline:
            time.sleep(0.05)
            removed += cleanup_stale()
        assert crashed not in list_namespaces()
        assert not _running(sleeper[0])
        assert not (LOCK_DIR / f"{tag}.lock").exists()
        # the live topology of this run is untouched
        assert ours(live) == [f"pyi-{live.tag}-live"]
    finally:
        if crash is not None:
            if crash.poll() is None:
                crash.kill()
                crash.wait()
            if crash.stdout is not None:
                crash.stdout.close()
        live.close()
        cleanup_stale()
    assert ours(live) == []
