"""The MOBIKE topology of the root tiers: a client with two uplinks to one gateway.

The client has two veth links to the gateway (think Wi-Fi and mobile data); the gateway's
IKE address ``GATEWAY`` lives on its ``lo`` and is reachable over both, the first link
preferred (lower metric). Inner addresses (/32 on ``lo``, as strongSwan's libipsec wants
them, shared/STRONGSWAN.md point 3) are ``CLIENT_INNER`` and ``GATEWAY_INNER``.
:func:`lose_uplink_later` takes the first link down on the client while a transfer runs
(:func:`paced_tcp`, slow enough to span the move, content checked by SHA-256).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.netns import Link, Namespace, Topology

__all__ = [
    "CLIENT_INNER",
    "GATEWAY",
    "GATEWAY_INNER",
    "TwoUplinks",
    "lose_uplink_later",
    "paced_tcp",
    "two_uplinks",
]

GATEWAY = "10.233.0.1"
CLIENT_INNER = "10.232.1.1"
GATEWAY_INNER = "10.232.2.1"


@dataclass(frozen=True, slots=True)
class TwoUplinks:
    client: Namespace
    gw: Namespace
    wifi: Link  # preferred; a = gateway end, b = client end
    mobile: Link


def two_uplinks(topology: Topology) -> TwoUplinks:
    client, gw = topology.namespace("client"), topology.namespace("gw")
    wifi, mobile = topology.link(gw, client), topology.link(gw, client)
    gw.add_address("lo", f"{GATEWAY}/32")
    client.run(["ip", "route", "add", GATEWAY, "via", wifi.a_addr, "metric", "10"])
    client.run(["ip", "route", "add", GATEWAY, "via", mobile.a_addr, "metric", "20"])
    client.add_address("lo", f"{CLIENT_INNER}/32")
    gw.add_address("lo", f"{GATEWAY_INNER}/32")
    return TwoUplinks(client, gw, wifi, mobile)


def lose_uplink_later(net: TwoUplinks, delay: float = 1.0) -> threading.Thread:
    """Take the client's Wi-Fi link down after ``delay`` seconds (in a thread; join it)."""

    def cut() -> None:
        time.sleep(delay)
        net.client.run(["ip", "link", "set", net.wifi.b_if, "down"])

    thread = threading.Thread(target=cut)
    thread.start()
    return thread


def paced_tcp(sender: Namespace, receiver: Namespace, dst: str, tmp: Path, *, seconds: float = 4.0) -> None:
    """4 MB in 64 KiB chunks, spread over about ``seconds``, checked by SHA-256 on arrival."""
    data = os.urandom(4 * 1024 * 1024)
    pause = seconds / 64
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
            f"for i in range(0, len(d), 65536):\n  s.sendall(d[i:i+65536]); time.sleep({pause})\n"
            "s.close()",
        ],
        timeout=120,
    )
    server.wait(90)
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(data).digest()
