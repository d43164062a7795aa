"""tshark with a throw-away profile: decrypt captures with the keys ``save_keys`` wrote.

tshark reads its personal tables (``ikev2_decryption_table``, ``esp_sa``) from
``$XDG_CONFIG_HOME/wireshark``; :func:`run_tshark` points ``XDG_CONFIG_HOME`` and ``HOME`` at a
temporary directory holding copies of the key files, so the user's own profile is never read or
touched. Its table loader checks algorithm names and key lengths and reports a bad line on
stderr as "Error loading table"; :func:`run_tshark` fails the test on that.

Without tshark a test is skipped, except under ``CI=true`` (CI installs it with
``scripts/install-deps.sh``), where it fails.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest

from pyipsec.net.addr import Datagram
from pyipsec.net.udp_encap import NON_ESP_MARKER

__all__ = ["require_tshark", "run_tshark", "write_pcap"]


def require_tshark() -> str:
    """tshark's path; skips the test without it (fails under ``CI=true``)."""
    path = shutil.which("tshark")
    if path is None:
        reason = "tshark is not installed (bash scripts/install-deps.sh)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run this test", pytrace=False)
        pytest.skip(reason)
    return path


def run_tshark(
    pcap: Path, keys: Path, home: Path, args: Sequence[str] = (), *, check_tables: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``tshark -r pcap`` with the key files of directory ``keys`` as its tables."""
    tshark = require_tshark()
    conf = home / "wireshark"
    conf.mkdir(parents=True, exist_ok=True)
    for name in ("ikev2_decryption_table", "esp_sa"):
        if (keys / name).exists():
            shutil.copyfile(keys / name, conf / name)
    env = {**os.environ, "XDG_CONFIG_HOME": str(home), "HOME": str(home)}
    done = subprocess.run(
        [tshark, "-n", "-r", str(pcap), "-o", "esp.enable_encryption_decode:TRUE", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    if check_tables:
        assert "Error loading table" not in done.stderr, done.stderr
    return done


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def write_pcap(path: Path, datagrams: Iterable[Datagram], *, nat_t: int = 4500) -> None:
    """A pcap (link type raw IPv4) of UDP/IPv4 IKE ``datagrams``, as if seen on the wire: on
    the NAT-T port with the non-ESP marker the I/O layer puts before them (RFC 3948 §2.2)."""
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 228))  # LINKTYPE_IPV4
    for n, d in enumerate(datagrams):
        payload = (NON_ESP_MARKER if nat_t in (d.local.port, d.remote.port) else b"") + d.payload
        udp = struct.pack("!HHHH", d.local.port, d.remote.port, 8 + len(payload), 0) + payload
        hdr = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), n, 0, 64, 17, 0, d.local.ip.packed, d.remote.ip.packed
        )
        ip = hdr[:10] + struct.pack("!H", _checksum(hdr)) + hdr[12:] + udp
        out += struct.pack("<IIII", 1_000_000 + n, 0, len(ip), len(ip)) + ip
    path.write_bytes(bytes(out))
