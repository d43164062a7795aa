"""The ESP data plane process: TUN, ESP over UDP 4500 and raw ESP, in one epoll loop.

The control plane uses :class:`~pyipsec.dataplane.channel.DataplaneHandle` (see
:mod:`pyipsec.dataplane.channel`); the process itself is :mod:`pyipsec.dataplane.process`.
"""

__all__: list[str] = []
