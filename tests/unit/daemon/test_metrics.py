"""The Prometheus metrics (``daemon.metrics``) of real runtimes over a memory network.

Each test brings SAs up, fails or closes them between a client and a gateway runtime
(``tests/support/daemons.py``), scrapes the gateway's registry as the endpoint does and parses
the exposition with ``prometheus_client``'s own parser. The endpoint's HTTP handling runs on a
real socket on the world's event loop.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from ipaddress import ip_address
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pyipsec.config.load import ConfigErrors, load_config
from pyipsec.config.model import Config
from pyipsec.config.values import HostPort, parse_host_port
from pyipsec.daemon import metrics
from pyipsec.daemon.lookups import Lookups
from pyipsec.daemon.metrics import MAX_CLIENTS, MAX_REQUEST, MetricsEndpoint
from pyipsec.errors import ConfigError
from pyipsec.ike.lookups import EapRelay, RevocationAnswer, RevocationQuery
from pyipsec.net.addr import Datagram, Endpoint
from pyipsec.radius import EapRelayAnswer as RadiusAnswer
from pyipsec.radius import RadiusAnswerKind
from tests.support.daemons import GW_ADDR, I_ADDR, Node, World, eap_configs, psk_configs

LOCAL_ANY_PORT = HostPort(ip_address("127.0.0.1"), 0)  # a free port (the setting itself takes 1-65535)
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(world: World, node: Node) -> Samples:
    body, content_type = world.drive(node.runtime.metrics.scrape())
    assert content_type.startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def names(samples: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


def _pair(world: World, tmp_path: Path, **kw: object) -> tuple[Node, Node]:
    client_cfg, gw_cfg = psk_configs(tmp_path, **kw)  # type: ignore[arg-type]
    return world.node(client_cfg, I_ADDR), world.node(gw_cfg, GW_ADDR)


# -- SAs, handshakes, traffic ---------------------------------------------------------------------


def test_sas_and_handshakes_are_counted_up_and_down(world: World, tmp_path: Path) -> None:
    client, gw = _pair(world, tmp_path)
    before = scrape(world, gw)
    assert names(before, "pyipsec_ike_sas") == {}
    assert value(before, "pyipsec_child_sas", connection="office") == 0
    assert world.command(client, "up", {"name": "office"})["ok"] is True
    for node in (client, gw):
        s = scrape(world, node)
        assert names(s, "pyipsec_ike_sas") == {(("connection", "office"), ("state", "established")): 1}
        assert value(s, "pyipsec_child_sas", connection="office") == 1
        assert value(s, "pyipsec_ike_handshakes_total", connection="office", result="established") == 1
        assert names(s, "pyipsec_ike_handshake_failures_total") == {}
    assert world.command(client, "down", {"name": "office"})["closed"]
    s = scrape(world, gw)
    assert names(s, "pyipsec_ike_sas") == {} and value(s, "pyipsec_child_sas", connection="office") == 0
    assert value(s, "pyipsec_ike_handshakes_total", connection="office", result="established") == 1
    assert value(s, "pyipsec_dpd_failures_total") == 0  # a Delete is no DPD failure


def test_traffic_per_connection_only_grows_across_removed_child_sas(world: World, tmp_path: Path) -> None:
    client, gw = _pair(world, tmp_path)
    assert world.command(client, "up", {"name": "office"})["ok"] is True
    (spi,) = gw.child_spis()
    gw.sink.traffic = {spi: {"bytes_in": 1000, "packets_in": 10, "bytes_out": 400, "packets_out": 4}}
    s = scrape(world, gw)
    assert value(s, "pyipsec_child_bytes_total", connection="office", direction="in") == 1000
    assert value(s, "pyipsec_child_packets_total", connection="office", direction="out") == 4
    # more traffic, reported by the data plane before the SA goes, then the SA is gone from it
    gw.sink.traffic = {spi: {"bytes_in": 1500, "packets_in": 15, "bytes_out": 400, "packets_out": 4}}
    gw.sink.answer_barriers()
    world.run_for(0.01)
    assert world.command(client, "down", {"name": "office"})["closed"]
    gw.sink.traffic = {}
    s = scrape(world, gw)
    assert value(s, "pyipsec_child_bytes_total", connection="office", direction="in") == 1500
    assert value(s, "pyipsec_child_packets_total", connection="office", direction="in") == 15
    # a new SA's traffic adds to the connection's total
    assert world.command(client, "up", {"name": "office"})["ok"] is True
    (spi2,) = gw.child_spis()
    gw.sink.traffic = {spi2: {"bytes_in": 100, "packets_in": 1}}
    s = scrape(world, gw)
    assert value(s, "pyipsec_child_bytes_total", connection="office", direction="in") == 1600
    assert value(s, "pyipsec_child_packets_total", connection="office", direction="in") == 16


def test_pool_addresses_used_and_free(world: World, tmp_path: Path) -> None:
    client, gw = _pair(
        world,
        tmp_path,
        client={"connections": {"office": {"vips": ["0.0.0.0"]}}},
        client_child={"local_ts": ["dynamic"]},
        gateway={
            "pools": {"rw": {"addrs": "10.3.0.0/28"}},
            "connections": {"office": {"pools": ["rw"], "children": {"net": {"remote_ts": ["dynamic"]}}}},
        },
    )
    pool = gw.runtime.engine.config.pools["rw"]
    size = int(pool.last) - int(pool.first) + 1
    s = scrape(world, gw)
    assert value(s, "pyipsec_pool_addresses", pool="rw", state="used") == 0
    assert value(s, "pyipsec_pool_addresses", pool="rw", state="free") == size
    assert world.command(client, "up", {"name": "office"})["ok"] is True
    s = scrape(world, gw)
    assert value(s, "pyipsec_pool_addresses", pool="rw", state="used") == 1
    assert value(s, "pyipsec_pool_addresses", pool="rw", state="free") == size - 1
    assert names(scrape(world, client), "pyipsec_pool_addresses") == {}  # the client has no pools
    world.command(client, "down", {"name": "office"})
    assert value(scrape(world, gw), "pyipsec_pool_addresses", pool="rw", state="used") == 0


def test_dataplane_drops_and_ike_counters_by_reason(world: World, tmp_path: Path) -> None:
    _client, gw = _pair(world, tmp_path)
    gw.sink.dp_totals = {"replay_drops": 3, "integrity_failures": 2, "unknown_spi": 7, "policy_drops": 1}
    world.net.send(Datagram(Endpoint.parse(I_ADDR, 500), Endpoint.parse(GW_ADDR, 500), b"not IKE"))
    world.net.deliver()
    s = scrape(world, gw)
    drops = {dict(k)["reason"]: v for k, v in names(s, "pyipsec_dataplane_drops_total").items()}
    assert (drops["replay"], drops["icv"], drops["no_sa"], drops["policy"]) == (3, 2, 7, 1)
    assert drops["no_policy"] == 0
    assert value(s, "pyipsec_ike_datagrams_dropped_total", reason="malformed") == 1
    assert value(s, "pyipsec_ike_udp_datagrams_total", direction="received") == 1


# -- failures -------------------------------------------------------------------------------------


def test_a_wrong_psk_counts_authentication_failed_on_both_sides(world: World, tmp_path: Path) -> None:
    client, gw = _pair(world, tmp_path, client={"secrets": {"ike-office": {"secret": "0x" + "43" * 32}}})
    assert world.command(client, "up", {"name": "office"})["ok"] is False
    world.run_for(5)
    for node in (gw, client):
        s = scrape(world, node)
        assert names(s, "pyipsec_ike_handshake_failures_total") == {(("reason", "AUTHENTICATION_FAILED"),): 1}
        assert names(s, "pyipsec_ike_sas") == {}
    s = scrape(world, client)
    assert value(s, "pyipsec_ike_handshakes_total", connection="office", result="failed") == 1


def test_a_refused_eap_password_is_an_authentication_failure(world: World, tmp_path: Path) -> None:
    client_cfg, gw_cfg, _ = eap_configs(
        tmp_path,
        password="not-alices-password",
        gateway={"secrets": {"eap-alice": {"id": "alice", "secret": "alice-secret-1"}}},
    )
    client, gw = world.node(client_cfg, I_ADDR), world.node(gw_cfg, GW_ADDR)
    assert world.command(client, "up", {"name": "rw"})["ok"] is False
    for node in (gw, client):
        s = scrape(world, node)
        assert names(s, "pyipsec_ike_handshake_failures_total") == {(("reason", "AUTHENTICATION_FAILED"),): 1}
        assert value(s, "pyipsec_ike_handshakes_total", connection="rw", result="failed") == 1


def test_no_proposal_chosen_is_counted_by_its_notify(world: World, tmp_path: Path) -> None:
    client, gw = _pair(
        world,
        tmp_path,
        client={"connections": {"office": {"proposals": ["aes256gcm16-prfsha384-ecp384"]}}},
        gateway={"connections": {"office": {"proposals": ["aes128-sha256-modp3072"]}}},
    )
    client.runtime.initiate("office")
    world.run_for(600)  # the client waits out its retransmissions: the error is unauthenticated
    assert client.sas() == [] and gw.sas() == []
    assert names(scrape(world, client), "pyipsec_ike_handshake_failures_total") == {
        (("reason", "NO_PROPOSAL_CHOSEN"),): 1
    }
    # the gateway refused every IKE_SA_INIT it got (the retransmission too), for the same reason
    (refused,) = names(scrape(world, gw), "pyipsec_ike_handshake_failures_total").items()
    assert refused[0] == (("reason", "NO_PROPOSAL_CHOSEN"),) and refused[1] >= 1


def test_ts_unacceptable_is_a_child_sa_failure(world: World, tmp_path: Path) -> None:
    client, gw = _pair(world, tmp_path, client_child={"remote_ts": ["10.9.0.0/16"]})
    world.command(client, "up", {"name": "office"})
    for node in (gw, client):
        s = scrape(world, node)
        assert value(s, "pyipsec_child_sa_failures_total", connection="office", reason="TS_UNACCEPTABLE") == 1
        assert value(s, "pyipsec_ike_handshakes_total", connection="office", result="established") == 1
        assert value(s, "pyipsec_child_sas", connection="office") == 0


def test_a_peer_that_stops_answering_is_a_timeout_then_a_dpd_failure(world: World, tmp_path: Path) -> None:
    client, _gw = _pair(world, tmp_path, client={"connections": {"office": {"dpd_delay": "10s"}}})
    world.net.cut(GW_ADDR)
    client.runtime.initiate("office")
    world.run_for(600)
    s = scrape(world, client)
    assert names(s, "pyipsec_ike_handshake_failures_total") == {(("reason", "timeout"),): 1}
    assert value(s, "pyipsec_dpd_failures_total") == 0  # it never was established
    world.net.heal()
    assert world.command(client, "up", {"name": "office"})["ok"] is True
    world.net.cut(GW_ADDR)
    world.run_for(600)
    assert client.sas() == []
    assert value(scrape(world, client), "pyipsec_dpd_failures_total") == 1


def test_rekeys_by_kind(world: World, tmp_path: Path) -> None:
    client, gw = _pair(world, tmp_path)
    assert world.command(client, "up", {"name": "office"})["ok"] is True
    assert world.command(client, "rekey", {"name": "office"})["rekeying"]
    world.run_for(10)
    assert world.command(client, "rekey", {"name": "office", "ike": True})["rekeying"]
    world.run_for(10)
    for node in (client, gw):
        s = scrape(world, node)
        kinds = {dict(k)["kind"]: v for k, v in names(s, "pyipsec_rekeys_total").items()}
        assert kinds == {"child": 1, "ike": 1, "reauth": 0}
        # a rekeyed IKE SA is no new handshake, and its end no failure
        assert value(s, "pyipsec_ike_handshakes_total", connection="office", result="established") == 1
        assert names(s, "pyipsec_ike_handshake_failures_total") == {}
        assert names(s, "pyipsec_ike_sas") == {(("connection", "office"), ("state", "established")): 1}


def test_lookup_latency_is_measured_on_the_runtime_clock(world: World, tmp_path: Path) -> None:
    _client, gw = _pair(world, tmp_path)

    class SlowChecker:
        async def check(self, *_args: object) -> RevocationAnswer:
            await asyncio.sleep(0)
            world.clock.advance_to(world.clock.now() + 0.3)
            return RevocationAnswer(False, "revoked")

    answers: list[object] = []
    lookups = Lookups(
        lambda _t, a: answers.append(a),
        revocation=SlowChecker(),  # type: ignore[arg-type]
        now=world.clock.now,
        timed=gw.runtime.metrics.lookup_done,
    )

    async def run() -> None:
        lookups.start(1, 1, RevocationQuery(chain=(), anchor=None, policy="strict"))  # type: ignore[arg-type]
        while not answers:
            await asyncio.sleep(0)

    world.drive(run())
    s = scrape(world, gw)
    assert value(s, "pyipsec_revocation_check_duration_seconds_count", result="refused") == 1
    assert value(s, "pyipsec_revocation_check_duration_seconds_sum", result="refused") == pytest.approx(0.3)
    assert value(s, "pyipsec_revocation_check_duration_seconds_bucket", result="refused", le="0.25") == 0
    assert value(s, "pyipsec_revocation_check_duration_seconds_bucket", result="refused", le="0.5") == 1


def test_radius_latency_by_result(world: World, tmp_path: Path) -> None:
    _client, gw = _pair(world, tmp_path)
    delays = {"alice": 0.02, "bob": 3.0}

    class SlowRadius:
        async def eap(self, *, user: str, **_kw: object) -> RadiusAnswer:
            await asyncio.sleep(0)
            world.clock.advance_to(world.clock.now() + delays[user])
            kind = RadiusAnswerKind.CHALLENGE if user == "alice" else RadiusAnswerKind.TIMEOUT
            return RadiusAnswer(kind, server="aaa")

        def close(self) -> None:
            pass

    answers: list[object] = []
    lookups = Lookups(
        lambda _t, a: answers.append(a),
        revocation=None,  # type: ignore[arg-type]
        radius=SlowRadius(),  # type: ignore[arg-type]
        now=world.clock.now,
        timed=gw.runtime.metrics.lookup_done,
    )

    async def run() -> None:
        for n, user in enumerate(delays):
            lookups.start(n, n, EapRelay(user, b"\x02", None, "s", "192.0.2.1[4500]", "192.0.2.2[4500]", n))
            while len(answers) <= n:
                await asyncio.sleep(0)

    world.drive(run())
    s = scrape(world, gw)
    name = "pyipsec_radius_request_duration_seconds"
    assert value(s, f"{name}_count", result="challenge") == 1
    assert value(s, f"{name}_sum", result="challenge") == pytest.approx(0.02)
    assert value(s, f"{name}_bucket", result="challenge", le="0.025") == 1
    assert value(s, f"{name}_sum", result="timeout") == pytest.approx(3.0)
    assert value(s, f"{name}_bucket", result="timeout", le="2.5") == 0


# -- the HTTP endpoint ----------------------------------------------------------------------------


def _exchange(world: World, endpoint: MetricsEndpoint, requests: list[bytes]) -> list[bytes]:
    """Serve on the world's loop; send each request on its own connection; the raw answers."""

    async def one(raw: bytes) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", endpoint.port)
        writer.write(raw)
        await writer.drain()
        if raw.endswith(b"\r\n\r\n") or len(raw) > MAX_REQUEST:
            data = await reader.read()
        else:  # an incomplete request: hang up before the server answers
            data = b""
        writer.close()
        await writer.wait_closed()
        return data

    async def main() -> list[bytes]:
        await endpoint.start()
        try:
            out = []
            for raw in requests:
                task = asyncio.ensure_future(one(raw))
                deadline = time.monotonic() + 10
                while not task.done():  # virtual timers (the counters' barrier) keep running
                    await asyncio.sleep(0.001)
                    world.step(world.clock.now() + 0.01)
                    assert time.monotonic() < deadline
                out.append(task.result())
            return out
        finally:
            await endpoint.close()

    return world.loop.run_until_complete(main())


def test_the_endpoint_serves_metrics_and_refuses_the_rest(world: World, tmp_path: Path) -> None:
    client, gw = _pair(world, tmp_path)
    assert world.command(client, "up", {"name": "office"})["ok"] is True
    endpoint = MetricsEndpoint(gw.runtime.metrics, LOCAL_ANY_PORT)
    ok, head, openmetrics, missing, post, garbage, binary, huge, silent, after = _exchange(
        world,
        endpoint,
        [
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n",
            b"HEAD /metrics HTTP/1.0\r\n\r\n",
            b"GET /metrics?x=1 HTTP/1.1\r\nAccept: application/openmetrics-text; version=1.0.0\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            b"hello\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nX: \xff\xfe\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nX: " + b"a" * (MAX_REQUEST + 100),
            b"GET /met",  # and then nothing: the server must not mind
            b"GET /metrics HTTP/1.1\r\n\r\n",
        ],
    )
    status, _, body = ok.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Type: text/plain; version=0.0.4" in status
    assert f"Content-Length: {len(body)}".encode() in status
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    (sample,) = families["pyipsec_ike_sas"].samples
    assert sample.labels == {"connection": "office", "state": "established"} and sample.value == 1
    assert head.startswith(b"HTTP/1.1 200 OK") and head.endswith(b"\r\n\r\n")
    assert b"application/openmetrics-text" in openmetrics and openmetrics.rstrip().endswith(b"# EOF")
    assert missing.startswith(b"HTTP/1.1 404 ")
    assert post.startswith(b"HTTP/1.1 405 ") and b"Allow: GET, HEAD" in post
    assert garbage.startswith(b"HTTP/1.1 400 ") and binary.startswith(b"HTTP/1.1 400 ")
    assert huge.startswith(b"HTTP/1.1 431 ")
    assert silent == b"" and after.startswith(b"HTTP/1.1 200 OK")


def test_idle_and_surplus_clients_are_hung_up_on(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _client, gw = _pair(world, tmp_path)
    monkeypatch.setattr(metrics, "REQUEST_TIMEOUT", 0.2)
    endpoint = MetricsEndpoint(gw.runtime.metrics, LOCAL_ANY_PORT)

    async def main() -> tuple[list[bytes], bytes, bytes]:
        await endpoint.start()
        try:
            idle = [await asyncio.open_connection("127.0.0.1", endpoint.port) for _ in range(MAX_CLIENTS)]
            await asyncio.sleep(0.05)
            r, w = await asyncio.open_connection("127.0.0.1", endpoint.port)
            surplus = await asyncio.wait_for(r.read(), 5)  # closed at once, unanswered
            w.close()
            # the idle ones are hung up on after REQUEST_TIMEOUT, unanswered
            answers = [await asyncio.wait_for(r.read(), 5) for r, _w in idle]
            for _r, w in idle:
                w.close()
            # and the endpoint serves again
            r, w = await asyncio.open_connection("127.0.0.1", endpoint.port)
            w.write(b"GET /nothing HTTP/1.1\r\n\r\n")
            again = await asyncio.wait_for(r.read(), 5)
            w.close()
            return answers, surplus, again
        finally:
            await endpoint.close()

    started = time.monotonic()
    answers, surplus, again = world.loop.run_until_complete(main())
    assert answers == [b""] * MAX_CLIENTS and surplus == b""
    assert again.startswith(b"HTTP/1.1 404 ")
    assert time.monotonic() - started < 5


def test_a_port_in_use_is_a_clear_error(world: World, tmp_path: Path) -> None:
    _client, gw = _pair(world, tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        endpoint = MetricsEndpoint(gw.runtime.metrics, parse_host_port(f"127.0.0.1:{port}"))
        with pytest.raises(ConfigError) as info:
            endpoint.open()
    assert str(info.value) == f"settings.metrics: cannot listen on 127.0.0.1:{port}: the port is in use"
    nowhere = MetricsEndpoint(gw.runtime.metrics, parse_host_port("192.0.2.77:9590"))
    with pytest.raises(ConfigError, match=r"192\.0\.2\.77:9590: no interface has that address"):
        nowhere.open()


def test_the_daemon_refuses_to_start_on_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = tmp_path / "gw.toml"
        cfg.write_text(
            "[settings]\n"
            f'metrics = "127.0.0.1:{port}"\n'
            "dataplane = false\n"
            f'control_socket = "{tmp_path / "gw.sock"}"\n'
            f'users = "{tmp_path / "users.db"}"\n'
        )
        done = subprocess.run(
            [sys.executable, "-m", "pyipsec", "daemon", str(cfg)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"pyipsec: settings.metrics: cannot listen on 127.0.0.1:{port}: the port is in use"
    )
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("9590", 'expected "ADDRESS:PORT"'),
        ("localhost:9590", 'not an IP address: "localhost"'),
        ("::1:9590", "an IPv6 address goes in brackets"),
        ("127.0.0.1:0", 'not a port (1-65535): "0"'),
        ("127.0.0.1:http", 'not a port (1-65535): "http"'),
    ],
)
def test_a_bad_metrics_setting_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(f'[settings]\nmetrics = "{text}"\n')
    with pytest.raises(ConfigErrors) as info:
        load_config(cfg)
    assert "settings.metrics" in str(info.value) and message in str(info.value)


def test_the_metrics_setting_is_off_by_default_and_takes_ipv6(world: World, tmp_path: Path) -> None:
    assert Config.model_validate({}).settings.metrics is None
    _client, gw = _pair(world, tmp_path)
    assert gw.runtime.metrics_endpoint is None  # counted, but not served
    client_cfg, _ = psk_configs(tmp_path, settings={"metrics": "[::1]:9590"})
    assert client_cfg.settings.metrics == HostPort(ip_address("::1"), 9590)
    assert parse_host_port("[::1]:9590") == HostPort(ip_address("::1"), 9590)
    assert str(parse_host_port("[::1]:9590")) == "[::1]:9590"
    assert str(parse_host_port(" 127.0.0.1:9590 ")) == "127.0.0.1:9590"
