"""MOBIKE between pyipsec daemons: the client loses one of its two uplinks mid-transfer.

Topology: the client has two veth links to the gateway (think Wi-Fi and mobile data); the
gateway's IKE address lives on its ``lo`` and is reachable over both, the first link
preferred (lower metric). While a TCP transfer runs through the tunnel, the first link goes
down: the route to the gateway now leaves from the second link's address, the client's
daemon notices (it watches the route to MOBIKE peers), sends UPDATE_SA_ADDRESSES from there,
both sides move the IKE SA and the Child SA, and the transfer completes intact.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.interop.test_ike_strongswan import _py_established, make_creds, pyipsec_config
from tests.support.netns import Namespace, Topology
from tests.support.pyipsecd import PyIpsecDaemon, pyipsec_factory  # noqa: F401 - fixture

pytestmark = pytest.mark.integration

GATEWAY = "10.233.0.1"


def paced_tcp(sender: Namespace, receiver: Namespace, dst: str, tmp: Path) -> None:
    """4 MB in 64 KiB chunks every 60 ms (about 4 s), checked by SHA-256 on arrival."""
    data = os.urandom(4 * 1024 * 1024)
    src, out = tmp / "paced.bin", tmp / "paced-received.bin"
    src.write_bytes(data)
    server = receiver.popen(
        [
            "python3",
            "-c",
            "import socket\n"
            "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            f"s.bind(('{dst}', 5202)); s.listen(1); c,_=s.accept()\n"
            f"f=open('{out}','wb')\n"
            "while True:\n  b=c.recv(65536)\n  if not b: break\n  f.write(b)\n"
            "f.close()",
        ],
    )
    sender.run(
        [
            "python3",
            "-c",
            "import socket,time\n"
            "for i in range(50):\n"
            "  try:\n"
            f"    s=socket.create_connection(('{dst}', 5202), timeout=30); break\n"
            "  except OSError: time.sleep(0.1)\n"
            f"d=open('{src}','rb').read()\n"
            "for i in range(0, len(d), 65536):\n  s.sendall(d[i:i+65536]); time.sleep(0.06)\n"
            "s.close()",
        ],
        timeout=90,
    )
    server.wait(60)
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(data).digest()


def test_transfer_survives_losing_an_uplink(
    topology: Topology,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
    tmp_path: Path,
) -> None:
    client, gw = topology.namespace("client"), topology.namespace("gw")
    wifi, mobile = topology.link(gw, client), topology.link(gw, client)
    gw.add_address("lo", f"{GATEWAY}/32")
    client.run(["ip", "route", "add", GATEWAY, "via", wifi.a_addr, "metric", "10"])
    client.run(["ip", "route", "add", GATEWAY, "via", mobile.a_addr, "metric", "20"])
    client.add_address("lo", "10.232.1.1/32")
    gw.add_address("lo", "10.232.2.1/32")
    creds = make_creds("psk")
    c_cfg = pyipsec_config(
        tmp_path / "c",
        creds,
        local="%any",
        remote=GATEWAY,
        lts="10.232.1.1/32",
        rts="10.232.2.1/32",
        ike="aes256gcm16-prfsha256-ecp256",
        esp="aes256gcm16",
    )
    g_cfg = pyipsec_config(
        tmp_path / "g",
        creds,
        local=GATEWAY,
        remote="%any",
        lts="10.232.2.1/32",
        rts="10.232.1.1/32",
        ike="aes256gcm16-prfsha256-ecp256",
        esp="aes256gcm16",
    )
    gc = g_cfg["connections"]["site"]  # type: ignore[index]
    gc["local"], gc["remote"] = c_cfg["connections"]["site"]["remote"], c_cfg["connections"]["site"]["local"]  # type: ignore[index]
    g = pyipsec_factory(gw, g_cfg, name="gw")
    c = pyipsec_factory(client, c_cfg, name="client")
    result = c.call("up", name="site", timeout=20)
    assert isinstance(result, dict) and result["ok"], result
    (sa,) = c.wait_for(_py_established)
    assert str(sa["local"]).startswith(wifi.b_addr)
    assert client.wait_ping("10.232.2.1", timeout=5)

    def lose_wifi() -> None:
        time.sleep(1.0)
        client.run(["ip", "link", "set", wifi.b_if, "down"])

    cut = threading.Thread(target=lose_wifi)
    cut.start()
    paced_tcp(client, gw, "10.232.2.1", tmp_path)  # ~4 s, content checked: spans the move
    cut.join()
    (sa,) = c.wait_for(lambda sas: bool(sas) and str(sas[0]["local"]).startswith(mobile.b_addr), timeout=20)
    (gsa,) = g.status()
    assert str(gsa["remote"]).startswith(mobile.b_addr)
    assert "MOBIKE" in c.log_text() and "MOBIKE" in g.log_text()
    assert client.ping("10.232.2.1", count=2)
