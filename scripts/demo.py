#!/usr/bin/env python3
"""pyipsec demo: a road-warrior VPN between two network namespaces, built with the pyipsec CLI.

    gateway  (netns pyi-demo-gw)      10.99.0.1  --veth--  10.99.0.2  (netns pyi-demo-client)  client
    LAN host behind the gateway: 10.10.0.1 (on the gateway's lo)

1. `pyipsec pki` makes a CA and the gateway's certificate, `pyipsec user add` an account
   (EAP-MSCHAPv2), `pyipsec user export --format pyipsec` the client's profile.
2. Both daemons start (IKE + the userspace ESP data plane over a TUN device).
3. `pyipsec up` connects: IKE_SA_INIT, IKE_AUTH with the gateway's certificate and the user's
   password, a virtual IP and DNS server from the gateway's pool, the Child SA.
4. Traffic: ping and an iperf3 TCP test from the client's virtual IP to the LAN host.
5. `pyipsec status` on both sides; then everything is removed again.

Run as root: `make demo`. Only addresses inside the demo's own namespaces are used.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GW_NS, CL_NS = "pyi-demo-gw", "pyi-demo-client"
GW_ADDR, CL_ADDR, LAN_HOST = "10.99.0.1", "10.99.0.2", "10.10.0.1"
PY = [sys.executable, "-m", "pyipsec"]


def sh(*cmd: str, check: bool = True, capture: bool = False, ns: str | None = None) -> str:
    argv = (["ip", "netns", "exec", ns] if ns else []) + list(cmd)
    r = subprocess.run(argv, check=False, text=True, capture_output=True)
    if check and r.returncode != 0:
        raise SystemExit(f"demo: `{' '.join(argv)}` failed:\n{r.stdout}{r.stderr}")
    return r.stdout if capture else ""


def step(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def cleanup(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
    for ns in (GW_NS, CL_NS):
        subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


def topology() -> None:
    for ns in (GW_NS, CL_NS):
        subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "set", "lo", "up", ns=ns)
    sh(
        "ip",
        "link",
        "add",
        "pyi-demo0",
        "netns",
        GW_NS,
        "type",
        "veth",
        "peer",
        "name",
        "pyi-demo1",
        "netns",
        CL_NS,
    )
    sh("ip", "addr", "add", f"{GW_ADDR}/24", "dev", "pyi-demo0", ns=GW_NS)
    sh("ip", "addr", "add", f"{CL_ADDR}/24", "dev", "pyi-demo1", ns=CL_NS)
    sh("ip", "link", "set", "pyi-demo0", "up", ns=GW_NS)
    sh("ip", "link", "set", "pyi-demo1", "up", ns=CL_NS)
    sh("ip", "addr", "add", f"{LAN_HOST}/32", "dev", "lo", ns=GW_NS)


def write_configs(d: Path) -> tuple[Path, Path]:
    step("PKI, user account and client profile (pyipsec pki / pyipsec user)")
    sh(*PY, "pki", "ca", "--cn", "pyipsec demo CA", "--key", "ecdsa", "--out", str(d / "ca"))
    sh(
        *PY,
        "pki",
        "gateway",
        "--ca",
        str(d / "ca"),
        "--name",
        "vpn.demo.test",
        "--name",
        GW_ADDR,
        "--key",
        "ecdsa",
        "--out",
        str(d / "gw"),
    )
    (d / "alice.pw").write_text("correct horse battery staple\n")
    (d / "alice.pw").chmod(0o600)
    sh(*PY, "user", "add", "alice", "--db", str(d / "users.db"), "--password-file", str(d / "alice.pw"))
    print(sh(*PY, "user", "list", "--db", str(d / "users.db"), capture=True), end="")
    cert = next((d / "gw").glob("*-cert.pem"))
    key = next((d / "gw").glob("*-key.pem"))
    gw = d / "gateway.toml"
    gw.write_text(f"""
[settings]
control_socket = "{d}/gw.sock"
users = "{d}/users.db"
tun = "pyi-gw"

[connections.rw]
local_addrs = ["{GW_ADDR}"]
remote_addrs = ["%any"]
proposals = ["aes256gcm16-prfsha256-ecp256", "aes256-sha256-modp2048"]
pools = ["office"]
send_cert = "always"
[connections.rw.local]
auth = "pubkey"
id = "vpn.demo.test"
certs = ["{cert}"]
[connections.rw.remote]
auth = "eap-mschapv2"
[connections.rw.children.lan]
local_ts = ["10.10.0.0/24"]
esp_proposals = ["aes256gcm16"]

[pools.office]
addrs = "10.10.8.0/24"
dns = ["{LAN_HOST}"]
domains = ["corp.demo.test"]

[secrets.private-gw]
file = "{key}"
""")
    client = d / "client.toml"
    sh(
        *PY,
        "user",
        "export",
        "alice",
        "--gateway",
        GW_ADDR,
        "--remote-id",
        "vpn.demo.test",
        "--ca",
        str(d / "ca"),
        "--format",
        "pyipsec",
        "--password-file",
        str(d / "alice.pw"),
        "--out",
        str(client),
    )
    profile = client.read_text()
    client.write_text(
        f'[settings]\ncontrol_socket = "{d}/client.sock"\ntun = "pyi-client"\n'
        f'resolv_conf = "{d}/client-resolv.conf"\n\n' + profile.replace("[settings]\n", "")
    )
    print(sh(*PY, "check", str(client), capture=True), end="")
    return gw, client


def start_daemon(ns: str, config: Path, sock: Path, log: Path) -> subprocess.Popen[bytes]:
    p = subprocess.Popen(
        ["ip", "netns", "exec", ns, *PY, "daemon", str(config)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    for _ in range(150):
        if p.poll() is not None:
            raise SystemExit(f"demo: the daemon in {ns} exited:\n{log.read_text()}")
        if sock.exists():
            return p
        time.sleep(0.1)
    raise SystemExit(f"demo: the daemon in {ns} did not start:\n{log.read_text()}")


def main() -> int:
    if shutil.which("ip") is None or Path("/proc/self/uid_map").read_text().split()[1] != "0":
        print("demo: run as root on Linux (network namespaces)", file=sys.stderr)
        return 1
    d = Path(tempfile.mkdtemp(prefix="pyipsec-demo-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        step(f"topology: gateway {GW_ADDR} (LAN host {LAN_HOST}) <-> client {CL_ADDR}")
        topology()
        gw_cfg, cl_cfg = write_configs(d)
        step("starting the gateway and the client daemons")
        procs.append(start_daemon(GW_NS, gw_cfg, d / "gw.sock", d / "gw.log"))
        procs.append(start_daemon(CL_NS, cl_cfg, d / "client.sock", d / "client.log"))
        step("pyipsec up")
        conn = next(
            line.split(".")[1].rstrip("]")
            for line in cl_cfg.read_text().splitlines()
            if line.startswith("[connections.") and line.count(".") == 1
        )
        up = subprocess.run([*PY, "up", conn, "--socket", str(d / "client.sock")], check=False)
        if up.returncode != 0:
            print((d / "client.log").read_text()[-4000:], (d / "gw.log").read_text()[-4000:], sep="\n")
            return 1
        status = json.loads(sh(*PY, "status", "--json", "--socket", str(d / "client.sock"), capture=True))
        vip = status["ike_sas"][0]["virtual_ips"][0]
        print(f"client resolv.conf:\n{(d / 'client-resolv.conf').read_text()}")
        step(f"ping {LAN_HOST} (the LAN behind the gateway) from the virtual IP {vip}")
        print(sh("ping", "-c", "3", "-W", "2", "-I", vip, LAN_HOST, ns=CL_NS, capture=True))
        step("iperf3 TCP through the tunnel (5 s)")
        server = subprocess.Popen(
            ["ip", "netns", "exec", GW_NS, "iperf3", "-s", "-1", "-B", LAN_HOST],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(server)
        time.sleep(0.5)
        result = json.loads(
            sh("iperf3", "-c", LAN_HOST, "-B", vip, "-t", "5", "-J", ns=CL_NS, capture=True, check=False)
        )
        if "error" in result:
            print(f"iperf3: {result['error']}")
            print((d / "client.log").read_text()[-3000:])
            return 1
        gbps = result["end"]["sum_received"]["bits_per_second"] / 1e9
        print(f"throughput: {gbps:.2f} Gbit/s (AES-256-GCM, one TCP stream)")
        step("pyipsec status (client)")
        print(sh(*PY, "status", "--socket", str(d / "client.sock"), capture=True))
        step("pyipsec status (gateway)")
        print(sh(*PY, "status", "--socket", str(d / "gw.sock"), capture=True))
        step("pyipsec down")
        print(sh(*PY, "down", conn, "--socket", str(d / "client.sock"), capture=True))
        return 0
    finally:
        cleanup(procs)
        shutil.rmtree(d, ignore_errors=True)
        print("demo: cleaned up")


if __name__ == "__main__":
    sys.exit(main())
