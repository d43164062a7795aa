"""Client-side host configuration: virtual IPs on the TUN device and DNS servers.

A road-warrior client gets inner addresses and DNS servers from the gateway (CP, RFC 7296
§2.19). The addresses go onto the TUN device (so that they are the source of tunnelled
traffic); the DNS servers go into a resolv.conf — written with a backup that ``restore``
puts back on ``down``. With systemd-resolved the link's DNS would be set with ``resolvectl``
instead; that is not done here yet (the resolv.conf path is configurable, so tests and
namespaces use their own file).
"""

from __future__ import annotations

import contextlib
import errno
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from pyipsec.net.addr import IPAddress

__all__ = ["HostNetwork"]

_log = logging.getLogger(__name__)
_MARK = "# written by pyipsec; the previous file is kept as {backup}\n"
_T = TypeVar("_T")


def _off_loop(fn: Callable[[], _T]) -> _T:
    """Run ``fn`` on a worker thread and wait for it.

    pyroute2's synchronous ``IPRoute`` drives an asyncio loop of its own (``run_until_complete``),
    which raises "This event loop is already running" when called from the daemon's running loop.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hostnet") as pool:
        return pool.submit(fn).result()


class HostNetwork:
    def __init__(self, ifname: str, *, resolv_conf: Path = Path("/etc/resolv.conf")) -> None:
        self.ifname = ifname
        self.resolv_conf = resolv_conf
        self._addresses: list[IPAddress] = []
        self._backup: Path | None = None

    def add_address(self, addr: IPAddress) -> None:
        _off_loop(lambda: self._add_address(addr))
        self._addresses.append(addr)
        _log.info("virtual IP %s on %s", addr, self.ifname)

    def _add_address(self, addr: IPAddress) -> None:
        with IPRoute() as ipr:
            links = ipr.link_lookup(ifname=self.ifname)
            if not links:
                raise OSError(f"no interface {self.ifname}")
            prefix = 32 if addr.version == 4 else 128
            try:
                ipr.addr("add", index=links[0], address=str(addr), prefixlen=prefix)
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:  # already there is fine (a reconnect)
                    raise OSError(exc.code, f"cannot add {addr} to {self.ifname}: {exc}") from None

    def remove_addresses(self) -> None:
        if self._addresses:
            _off_loop(self._remove_addresses)
        self._addresses.clear()

    def _remove_addresses(self) -> None:
        with IPRoute() as ipr:
            links = ipr.link_lookup(ifname=self.ifname)
            for addr in self._addresses:
                if links:
                    with contextlib.suppress(NetlinkError):  # gone with the device, or removed by hand
                        ipr.addr(
                            "del",
                            index=links[0],
                            address=str(addr),
                            prefixlen=32 if addr.version == 4 else 128,
                        )

    def set_dns(self, servers: Sequence[IPAddress], domains: Sequence[str]) -> None:
        if not servers:
            return
        if self._backup is None:
            backup = self.resolv_conf.with_name(self.resolv_conf.name + ".pyipsec-backup")
            if self.resolv_conf.exists():
                backup.write_bytes(self.resolv_conf.read_bytes())
            self._backup = backup
        lines = [_MARK.format(backup=self._backup)]
        if domains:
            lines.append("search " + " ".join(domains) + "\n")
        lines += [f"nameserver {s}\n" for s in servers]
        self.resolv_conf.write_text("".join(lines))
        _log.info("DNS servers %s", ", ".join(map(str, servers)))

    def restore(self) -> None:
        self.remove_addresses()
        if self._backup is not None:
            if self._backup.exists():
                self.resolv_conf.write_bytes(self._backup.read_bytes())
                self._backup.unlink()
            else:  # there was no file before ours
                self.resolv_conf.unlink(missing_ok=True)
            self._backup = None
