"""Linux TUN device (``/dev/net/tun``): layer-3 packets in and out of the kernel.

Theory of operation
-------------------
:func:`open_tun` creates (or attaches to) a TUN interface with ``IFF_TUN | IFF_NO_PI``, so every
``read`` returns exactly one IP packet and every ``write`` injects one. With ``vnet_hdr=True``
it also sets ``IFF_VNET_HDR`` and a 10-byte ``virtio_net_hdr`` precedes each packet in both
directions (``TUNSETVNETHDRSZ``); the offload flags given to ``TUNSETOFFLOAD`` (``TUN_F_CSUM``,
``TUN_F_TSO4``, ``TUN_F_TSO6``) let the kernel hand over 64 KB TCP super-segments with partial
checksums, which the data plane must segment and finish (``pyipsec.dataplane.offload``).

``TUNSETOFFLOAD`` is always issued, with 0 when offload is off: a persistent device keeps the
flags an earlier owner set, and a reader that does not expect partial checksums would then put
broken packets on the wire.

The device disappears when its last fd closes (it is not made persistent), which also removes
its addresses and routes. Interface settings (up, MTU, routes) go through netlink
(:mod:`pyipsec.io.netconf`).
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from collections.abc import Sequence
from typing import Protocol, TypeAlias

__all__ = [
    "IFF_NO_PI",
    "IFF_TUN",
    "IFF_VNET_HDR",
    "TUN_F_CSUM",
    "TUN_F_TSO4",
    "TUN_F_TSO6",
    "TUN_F_TSO_ECN",
    "LinuxTun",
    "TunDevice",
    "TunError",
    "open_tun",
]

TUNSETIFF = 0x400454CA
TUNSETOFFLOAD = 0x400454D0
TUNSETVNETHDRSZ = 0x400454D8
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04
TUN_F_TSO_ECN = 0x08
VNET_HDR_LEN = 10
_IFREQ = struct.Struct("16sH22x")

BytesLike: TypeAlias = bytes | bytearray | memoryview


class TunError(OSError):
    """The TUN device could not be created or configured."""


class TunDevice(Protocol):
    """What the data plane needs of a TUN device (an in-memory fake implements it in tests)."""

    name: str
    vnet_hdr: bool

    def fileno(self) -> int: ...

    def read_into(self, buf: memoryview) -> int: ...

    def write(self, packet: BytesLike) -> int: ...

    def writev(self, parts: Sequence[BytesLike]) -> int: ...

    def close(self) -> None: ...


class LinuxTun:
    """An open, non-blocking TUN fd; ``read_into`` raises BlockingIOError when empty."""

    def __init__(self, fd: int, name: str, *, vnet_hdr: bool, offload: int) -> None:
        self.fd = fd
        self.name = name
        self.vnet_hdr = vnet_hdr
        self.offload = offload

    def fileno(self) -> int:
        return self.fd

    def read_into(self, buf: memoryview) -> int:
        return os.readv(self.fd, (buf,))

    def write(self, packet: BytesLike) -> int:
        return os.write(self.fd, packet)

    def writev(self, parts: Sequence[BytesLike]) -> int:
        return os.writev(self.fd, parts)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __repr__(self) -> str:
        return f"LinuxTun({self.name!r}, fd={self.fd}, vnet_hdr={self.vnet_hdr}, offload={self.offload:#x})"


def open_tun(
    name: str = "pyi0",
    *,
    vnet_hdr: bool = False,
    offload: int = 0,
    path: str = "/dev/net/tun",
) -> LinuxTun:
    """Create the TUN interface ``name`` (not persistent) and return its non-blocking fd.

    ``offload`` is passed to ``TUNSETOFFLOAD`` (always, see the module docstring); offloads
    other than 0 need ``vnet_hdr``.
    """
    if offload and not vnet_hdr:
        raise ValueError("TUN offloads need the virtio-net header (vnet_hdr=True)")
    if not 0 < len(name.encode()) < 16:
        raise ValueError(f"bad interface name {name!r}")
    try:
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise TunError(errno.ENOENT, f"{path} does not exist (no TUN support in this kernel?)") from None
    except OSError as exc:
        raise TunError(exc.errno, f"cannot open {path}: {exc.strerror}") from None
    flags = IFF_TUN | IFF_NO_PI | (IFF_VNET_HDR if vnet_hdr else 0)
    try:
        res = fcntl.ioctl(fd, TUNSETIFF, _IFREQ.pack(name.encode(), flags))
        actual = _IFREQ.unpack(res)[0].rstrip(b"\0").decode()
        if vnet_hdr:
            fcntl.ioctl(fd, TUNSETVNETHDRSZ, struct.pack("i", VNET_HDR_LEN))
        fcntl.ioctl(fd, TUNSETOFFLOAD, offload)
    except OSError as exc:
        os.close(fd)
        raise TunError(exc.errno, f"cannot set up TUN device {name!r}: {exc.strerror}") from None
    return LinuxTun(fd, actual, vnet_hdr=vnet_hdr, offload=offload)
