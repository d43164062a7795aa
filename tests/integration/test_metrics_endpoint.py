"""The metrics endpoint of a real pyipsec gateway, scraped over the network with urllib.

Two pyipsec daemons in network namespaces bring up a tunnel; the right one serves
``[settings] metrics`` on its link address. From the left namespace a real HTTP client (urllib,
in a subprocess there) scrapes it before and after traffic through the tunnel: the SA gauges
are right and the connection's bytes and packets grow by what went through.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.interop.test_ike_strongswan import _py_established, make_creds, pyipsec_config
from tests.support.netns import Namespace, Topology, two_hosts
from tests.support.pyipsecd import PyIpsecDaemon, pyipsec_factory  # noqa: F401 - fixture

pytestmark = pytest.mark.integration

_SCRAPE = (
    "import sys, urllib.request\n"
    "with urllib.request.urlopen(sys.argv[1], timeout=5) as r:\n"
    "    sys.stdout.write(r.headers['Content-Type'] + '\\n' + r.read().decode())\n"
)


def _scrape(ns: Namespace, url: str) -> tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    done = ns.run([sys.executable, "-c", _SCRAPE, url], timeout=20)
    content_type, _, body = done.stdout.partition("\n")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }
    return content_type, samples


def test_the_gateway_endpoint_counts_sas_and_traffic(
    topology: Topology,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
    tmp_path: Path,
) -> None:
    hosts = two_hosts(topology)
    a, b = hosts.left, hosts.right
    a.add_address("lo", "10.233.1.1/32")
    b.add_address("lo", "10.233.2.1/32")
    creds = make_creds("psk")
    ike, esp = "aes256gcm16-prfsha256-ecp256", "aes256gcm16"
    left = pyipsec_config(
        tmp_path / "l", creds, local=hosts.link.a_addr, remote=hosts.link.b_addr,
        lts="10.233.1.1/32", rts="10.233.2.1/32", ike=ike, esp=esp,
    )  # fmt: skip
    right = pyipsec_config(
        tmp_path / "r", creds, local=hosts.link.b_addr, remote=hosts.link.a_addr,
        lts="10.233.2.1/32", rts="10.233.1.1/32", ike=ike, esp=esp,
    )  # fmt: skip
    rc = right["connections"]["site"]  # type: ignore[index]
    rc["local"], rc["remote"] = left["connections"]["site"]["remote"], left["connections"]["site"]["local"]  # type: ignore[index]
    right["settings"]["metrics"] = f"{hosts.link.b_addr}:9590"  # type: ignore[index]
    da = pyipsec_factory(a, left, name="left")
    db = pyipsec_factory(b, right, name="gateway")
    url = f"http://{hosts.link.b_addr}:9590/metrics"

    result = da.call("up", name="site", timeout=20)
    assert isinstance(result, dict) and result["ok"], (result, db.log_text()[-2000:])
    db.wait_for(_py_established)
    content_type, before = _scrape(a, url)
    assert content_type.startswith("text/plain")
    assert before[("pyipsec_ike_sas", (("connection", "site"), ("state", "established")))] == 1
    assert before[("pyipsec_child_sas", (("connection", "site"),))] == 1
    assert before[("pyipsec_ike_handshakes_total", (("connection", "site"), ("result", "established")))] == 1

    assert a.wait_ping("10.233.2.1", timeout=5)
    assert a.ping("10.233.2.1", count=5, size=1000)
    _, after = _scrape(a, url)

    def grew(what: str, direction: str) -> float:
        key = (f"pyipsec_child_{what}_total", (("connection", "site"), ("direction", direction)))
        return after[key] - before.get(key, 0.0)

    assert grew("packets", "in") >= 5 and grew("packets", "out") >= 5
    assert grew("bytes", "in") >= 5 * 1000 and grew("bytes", "out") >= 5 * 1000
    assert after[("pyipsec_dataplane_drops_total", (("reason", "icv"),))] == 0
    assert after[("pyipsec_ike_sas", (("connection", "site"), ("state", "established")))] == 1
