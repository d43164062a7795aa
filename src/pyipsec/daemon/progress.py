"""Control callers waiting for an IKE SA: ``pyipsec up`` (and ``down``) progress and results.

Theory of operation
-------------------
A :class:`Waiter` follows one IKE SA by its id. The runtime feeds every engine event to
:class:`Waiters`, which hands it to the waiters of that SA. Each step on the way becomes a
progress line for the caller (``{"phase": …, "detail": …}``: IKE_SA_INIT, IKE_AUTH, EAP, the
virtual IP and DNS servers, the Child SA and its routes); the waiter's future resolves with the
``up`` result once the SA is established (with its first Child SA, if the connection has
children) or has failed — ``ChildSaFailed`` or ``IkeSaClosed`` say why. ``down`` waits on a
waiter without a child, which resolves (not ok) when the SA closes. Waiting is bounded by the
caller (``daemon.commands``); a done waiter is dropped. An SA redirected in IKE_SA_INIT (RFC 5685,
``daemon.redirect``) hands its waiters to the SA that follows the redirect, or fails them
naming why it was not followed (:meth:`Waiters.redirected`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from pyipsec.control.protocol import JsonValue
from pyipsec.control.server import Progress
from pyipsec.ike.events import (
    ChildSaFailed,
    ChildSaInstalled,
    Event,
    IkeSaClosed,
    IkeSaEstablished,
    SaProgress,
    VirtualIpAssigned,
)
from pyipsec.ike.info import IkeSaInfo
from pyipsec.ike.proposal_text import format_chosen

__all__ = ["Waiter", "Waiters", "already_up", "no_progress"]


def no_progress(event: dict[str, JsonValue]) -> None:
    pass


@dataclass
class Waiter:
    """A control caller waiting for the outcome of one IKE SA (and told each step on the way)."""

    sa_id: int
    want_child: bool
    future: asyncio.Future[JsonValue]
    progress: Progress = no_progress
    tun: str = ""  # where the Child SA's routes go ("": no data plane)
    children: list[JsonValue] = field(default_factory=list)
    vips: list[JsonValue] = field(default_factory=list)
    dns: list[JsonValue] = field(default_factory=list)
    summary: dict[str, JsonValue] = field(default_factory=dict)

    def _step(self, phase: str, detail: str) -> None:
        self.progress({"phase": phase, "detail": detail})

    def feed(self, e: Event) -> None:
        if self.future.done():
            return
        if isinstance(e, SaProgress):
            self._step(e.phase, e.detail)
        elif isinstance(e, VirtualIpAssigned):
            self.vips += [str(a) for a in e.addresses]
            self.dns += [str(a) for a in e.dns]
            self._step("CP", f"virtual IP {', '.join(map(str, e.addresses))}")
            if e.dns:
                domains = f" (search {' '.join(e.domains)})" if e.domains else ""
                self._step("DNS", f"{', '.join(map(str, e.dns))}{domains}")
        elif isinstance(e, IkeSaEstablished):
            self.summary.update(
                remote=str(e.remote), remote_id=e.remote_id, proposal=format_chosen(e.proposal)
            )
            self._step("IKE SA", f"established with {e.remote_id} at {e.remote}")
            if not self.want_child:
                self._done(True, "established")
        elif isinstance(e, ChildSaInstalled):
            self.children.append(e.child)
            local = [str(t) for t in e.spec.local_ts]
            remote = [str(t) for t in e.spec.remote_ts]
            how = "ESP in UDP 4500" if e.spec.encap else "ESP"
            proposal = format_chosen(e.proposal)
            self._step("CHILD SA", f"{e.child}: {' '.join(local)} === {' '.join(remote)}, {proposal}, {how}")
            if self.tun:
                self._step("routes", f"{' '.join(remote)} via {self.tun}")
            self.summary.update(child_proposal=proposal, local_ts=list(local), remote_ts=list(remote))
            self._done(True, "established")
        elif isinstance(e, ChildSaFailed):
            self._done(False, f"IKE SA established, but Child SA {e.child} failed: {e.reason}")
        elif isinstance(e, IkeSaClosed):
            self._done(False, e.reason)

    def _done(self, ok: bool, message: str) -> None:
        self.future.set_result(
            {
                "sa_id": self.sa_id,
                "ok": ok,
                "message": message,
                "children": self.children,
                "virtual_ips": self.vips,
                "dns": self.dns,
                **self.summary,
            }
        )


class Waiters:
    def __init__(self) -> None:
        self._waiting: list[Waiter] = []

    def add(
        self, sa_id: int, *, want_child: bool = False, progress: Progress = no_progress, tun: str = ""
    ) -> Waiter:
        w = Waiter(sa_id, want_child, asyncio.get_running_loop().create_future(), progress, tun)
        self._waiting.append(w)
        return w

    def redirected(self, old: int, new: int | None, detail: str) -> None:
        """IKE SA ``old`` was redirected before it was established: its waiters follow IKE SA
        ``new`` from now on (one more step), or fail with ``detail`` if ``new`` is None."""
        for w in self._waiting:
            if w.sa_id != old:
                continue
            if new is None:
                w._done(False, detail)
            else:
                w._step("REDIRECT", detail)
                w.sa_id = new
        self._waiting = [w for w in self._waiting if not w.future.done()]

    def feed(self, e: Event) -> None:
        for w in self._waiting:
            if w.sa_id == e.sa_id:
                w.feed(e)
        self._waiting = [w for w in self._waiting if not w.future.done()]


def already_up(sa: IkeSaInfo) -> dict[str, JsonValue]:
    """The ``up`` result for a connection whose SA is up already (e.g. started with the daemon)."""
    return {
        "sa_id": sa.sa_id,
        "ok": True,
        "message": "already established",
        "children": [c.name for c in sa.children],
        "virtual_ips": [str(a) for a in sa.virtual_ips],
        "dns": [],
    }
