"""Reloading a gateway's configuration under traffic (``pyipsec reload``, SIGHUP; issue 13).

Two pyipsec daemons in network namespaces, with their data planes. The client has the
connections ``site`` (UDP iperf3 through it the whole time) and ``extra`` up. While the traffic
flows, the gateway's file is rewritten — ``extra`` removed, ``lab`` added — and reloaded with
``pyipsec reload`` as an administrator types it, then changed again and reloaded by SIGHUP.
Not one datagram of ``site`` may be lost and its IKE and Child SA keep their ids and SPIs;
``extra``'s SAs are deleted on both sides (the gateway told the client); ``lab`` comes up.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from pyipsec.control.protocol import JsonValue
from tests.integration.test_survive import INNER_C, INNER_S, _child, _inner
from tests.support.netns import Topology, two_hosts
from tests.support.pyipsecd import PyIpsecDaemon, pyipsec_factory, to_toml  # noqa: F401 - fixture
from tests.support.survive import CLIENT_ID, PSK, SERVER_ID, Schedule, iperf3_udp, pyipsec_site

pytestmark = pytest.mark.integration

Factory = Callable[..., PyIpsecDaemon]


def _extra(conn: dict[str, Any], name: str, lts: str, rts: str, *, me: str, peer: str) -> dict[str, Any]:
    """A copy of connection ``conn`` with other identities and traffic selectors."""
    out = json.loads(json.dumps(conn))
    out["local"]["id"], out["remote"]["id"] = me, peer
    out["children"]["net"]["local_ts"], out["children"]["net"]["remote_ts"] = [lts], [rts]
    return out


def _configs(client_addr: str, server_addr: str) -> tuple[dict[str, Any], dict[str, Any]]:
    c = pyipsec_site(
        local=client_addr,
        remote=server_addr,
        local_ts=f"{INNER_C}/32",
        remote_ts=f"{INNER_S}/32",
        initiator=True,
    )
    s = pyipsec_site(
        local=server_addr,
        remote=client_addr,
        local_ts=f"{INNER_S}/32",
        remote_ts=f"{INNER_C}/32",
        initiator=False,
    )
    for name, n in (("extra", 3), ("lab", 5)):
        who = f"{name}.{CLIENT_ID}"
        cs, ss = f"10.232.{n}.1/32", f"10.232.{n + 1}.1/32"
        c["connections"][name] = _extra(c["connections"]["site"], name, cs, ss, me=who, peer=SERVER_ID)  # type: ignore[index]
        s["connections"][name] = _extra(s["connections"]["site"], name, ss, cs, me=SERVER_ID, peer=who)  # type: ignore[index]
        for tree in (c, s):
            tree["secrets"][f"ike-{name}"] = {"id": [who, SERVER_ID], "secret": PSK}  # type: ignore[index]
    return c, s


def _ids(d: PyIpsecDaemon, name: str) -> tuple[JsonValue, ...]:
    (sa,) = [s for s in d.status() if s["name"] == name and s["state"] == "ESTABLISHED"]
    return sa["id"], sa["spi_i"], sa["spi_r"], _child(sa)["spi_in"], _child(sa)["spi_out"]


def _names(sas: list[dict[str, JsonValue]]) -> set[str]:
    return {str(s["name"]) for s in sas}


def test_reload_under_traffic_loses_nothing_on_the_unchanged_connection(
    topology: Topology,
    pyipsec_factory: Factory,  # noqa: F811
) -> None:
    hosts = two_hosts(topology)
    client, server = hosts.left, hosts.right
    _inner(client, server)
    c, s = _configs(hosts.link.a_addr, hosts.link.b_addr)
    gateway_tree = json.loads(json.dumps(s))
    del s["connections"]["lab"]  # type: ignore[attr-defined]
    with ThreadPoolExecutor(2) as pool:  # the two daemons start side by side
        started = pool.submit(pyipsec_factory, server, s, name="gateway")
        dc = pyipsec_factory(client, c, name="client")
        ds = started.result()
    for name in ("site", "extra"):
        result = dc.call("up", name=name, timeout=20)
        assert isinstance(result, dict) and result["ok"], (result, ds.log_text()[-2000:])
    ds.wait_for(lambda sas: _names(sas) == {"site", "extra"})
    assert client.wait_ping(INNER_S, timeout=5)
    site_c, site_s = _ids(dc, "site"), _ids(ds, "site")

    # the gateway's new file: extra removed, lab added, site unchanged
    del gateway_tree["connections"]["extra"]
    ds.config_path.write_text(to_toml(gateway_tree))

    def reload_cli() -> object:
        argv = [sys.executable, "-m", "pyipsec", "reload", "--socket", str(ds.socket)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0, (done.stdout, done.stderr)
        lines = done.stdout.splitlines()
        assert "  added      lab" in lines and "  removed    extra" in lines, done.stdout
        return done.stdout

    def reload_sighup() -> object:
        gateway_tree["settings"]["cookie_threshold"] = 7
        ds.config_path.write_text(to_toml(gateway_tree))
        assert ds.proc is not None
        ds.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while ds.log_text().count("reloaded ") < 2:
            assert time.monotonic() < deadline, ds.log_text()[-2000:]
            time.sleep(0.05)
        return True

    schedule = Schedule([(1.0, "pyipsec reload", reload_cli), (3.0, "SIGHUP", reload_sighup)]).start()
    report = iperf3_udp(client, server, dst=INNER_S, src=INNER_C, bitrate="20M", seconds=5)
    schedule.join()
    assert not schedule.failures(), schedule.results
    print(f"\nreload: {report.packets} packets, lost {report.lost}, out of order {report.out_of_order}")

    # extra's SAs were deleted on both sides; site's are the same SAs as before
    dc.wait_for(lambda sas: _names(sas) == {"site"}, timeout=5)
    ds.wait_for(lambda sas: _names(sas) == {"site"}, timeout=5)
    assert _ids(dc, "site") == site_c and _ids(ds, "site") == site_s
    assert report.packets > 5000, report
    assert report.lost == 0, (report, ds.log_text()[-3000:])
    log = ds.log_text()
    assert log.count("reloaded ") == 2 and "settings applied: cookie_threshold" in log, log[-3000:]
    # the added connection is usable
    result = dc.call("up", name="lab", timeout=20)
    assert isinstance(result, dict) and result["ok"], (result, ds.log_text()[-2000:])
    assert _ids(dc, "site") == site_c
