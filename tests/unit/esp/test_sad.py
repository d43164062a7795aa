"""SAD: immutable snapshots, SPI lookup, rekey overlap."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from pyipsec.esp.sad import Child, Peer, Sad
from pyipsec.esp.spd import Policy, Selector
from pyipsec.net.addr import Endpoint

from ._support import SUITES, sa_pair

PEER = Peer(Endpoint(ip_address("192.0.2.1"), 4500), Endpoint(ip_address("192.0.2.2"), 4500), True)
TS = (Selector.network("10.0.0.0/8"),)


def _child(spi_in: int, spi_out: int) -> Child:
    out, _ = sa_pair(SUITES[2], spi=spi_out)
    _, inb = sa_pair(SUITES[2], spi=spi_in)
    return Child(inbound=inb, outbound=out, policy=Policy(spi_in, TS, TS), peer=PEER)


def test_snapshots_are_immutable_and_swapped_whole() -> None:
    empty = Sad()
    a = _child(0x1001, 0x2001)
    one = empty.with_child(a)
    assert len(empty) == 0 and len(one) == 1
    assert one.get(0x1001) is a and empty.get(0x1001) is None
    with pytest.raises(TypeError):
        one.inbound[5] = a  # type: ignore[index]
    assert one.without(0x1001).get(0x1001) is None
    assert one.get(0x1001) is a  # the old snapshot is untouched
    assert list(one) == [a]


def test_rekey_holds_old_and_new_inbound_sas() -> None:
    old, new = _child(0x1001, 0x2001), _child(0x1002, 0x2002)
    both = Sad().with_child(old).with_child(new)
    assert both.get(0x1001) is old and both.get(0x1002) is new
    after = both.without(0x1001)
    assert after.get(0x1001) is None and after.get(0x1002) is new


def test_duplicate_spi_and_bad_key_refused() -> None:
    a = _child(0x1001, 0x2001)
    sad = Sad().with_child(a)
    with pytest.raises(ValueError, match="already installed"):
        sad.with_child(_child(0x1001, 0x2009))
    assert sad.with_child(a).get(0x1001) is a  # re-adding the same child is harmless
    out, _ = sa_pair(SUITES[2], spi=0x3001)
    _, inb = sa_pair(SUITES[2], spi=0x3002)
    with pytest.raises(ValueError, match="policy key"):
        Child(inbound=inb, outbound=out, policy=Policy(0x9999, TS, TS), peer=PEER)
