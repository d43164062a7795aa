"""Fixtures of the integration tier (root; network namespaces): ready-made topologies.

The tier's prerequisites (root, ``ip netns``) are checked by the root conftest for every test
marked ``integration``; mark each module with ``pytestmark = pytest.mark.integration``.
"""

from __future__ import annotations

import pytest

from tests.support.netns import NatTopology, Topology, TwoHosts, nat_topology, two_hosts


@pytest.fixture
def hosts(topology: Topology) -> TwoHosts:
    """``left`` 10.231.1.1 and ``right`` 10.231.1.2 (plus fd00:231:0:1::1/::2) on one veth link."""
    return two_hosts(topology)


@pytest.fixture
def nat(topology: Topology) -> NatTopology:
    """client 10.231.1.2 – router (masquerade out of 10.231.2.1) – server 10.231.2.2."""
    return nat_topology(topology)
