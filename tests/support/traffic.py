"""Traffic through tunnels for the root tiers: a bulk TCP transfer checked end to end."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tests.support.netns import Namespace

__all__ = ["TRANSFER", "bulk_tcp"]

TRANSFER = 8 * 1024 * 1024


def bulk_tcp(sender_ns: Namespace, receiver_ns: Namespace, dst: str, tmp: Path) -> None:
    """Send TRANSFER random bytes over TCP and compare SHA-256 on both ends."""
    data = os.urandom(TRANSFER)
    src = tmp / "payload.bin"
    src.write_bytes(data)
    out = tmp / "received.bin"
    server = receiver_ns.popen(
        [
            "python3",
            "-c",
            "import socket,sys\n"
            "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            f"s.bind(('{dst}', 5201)); s.listen(1); c,_=s.accept()\n"
            f"f=open('{out}','wb')\n"
            "while True:\n  b=c.recv(65536)\n  if not b: break\n  f.write(b)\n"
            "f.close()",
        ],
    )
    sender_ns.run(
        [
            "python3",
            "-c",
            "import socket,time\n"
            "for i in range(50):\n"
            "  try:\n"
            f"    s=socket.create_connection(('{dst}', 5201), timeout=5); break\n"
            "  except OSError: time.sleep(0.1)\n"
            f"s.sendall(open('{src}','rb').read()); s.close()",
        ],
        timeout=60,
    )
    server.wait(60)
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(data).digest()
