"""The lossy-link UDP relay (tests/support/relay.py), on 127.0.0.1 only."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.relay import Direction, Impairment, UdpRelay, parse_endpoint

LOOPBACK = "127.0.0.1"
REPO = Path(__file__).resolve().parents[3]


def _udp(timeout: float = 2.0) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((LOOPBACK, 0))
    s.settimeout(timeout)
    return s


@pytest.fixture
def ends() -> Iterator[tuple[socket.socket, socket.socket]]:
    """(client, server) sockets on loopback."""
    client, server = _udp(), _udp()
    yield client, server
    client.close()
    server.close()


def _drain(sock: socket.socket, *, quiet: float = 0.3) -> list[bytes]:
    """Everything that arrives until nothing has for ``quiet`` seconds."""
    out: list[bytes] = []
    sock.settimeout(quiet)
    while True:
        try:
            out.append(sock.recv(65535))
        except TimeoutError:
            return out


def _send_all(sock: socket.socket, dest: tuple[str, int], n: int) -> None:
    for i in range(n):
        sock.sendto(b"%d" % i, dest)


def _wait_idle(relay: UdpRelay, direction: Direction, n: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while relay.stats[direction].received < n or relay.pending():
        assert time.monotonic() < deadline, relay.stats
        time.sleep(0.01)


def test_passthrough_both_directions_in_order(ends: tuple[socket.socket, socket.socket]) -> None:
    client, server = ends
    with UdpRelay(server.getsockname()) as relay:
        _send_all(client, relay.address, 30)
        got = [server.recvfrom(100) for _ in range(30)]
        assert [d for d, _ in got] == [b"%d" % i for i in range(30)]
        # the server sees the relay's back socket, and its replies reach the client
        assert {a for _, a in got} == {(LOOPBACK, relay.source_address[1])}
        for i in range(30):
            server.sendto(b"r%d" % i, got[0][1])
        replies = [client.recvfrom(100) for _ in range(30)]
        assert [d for d, _ in replies] == [b"r%d" % i for i in range(30)]
        assert {a for _, a in replies} == {relay.address}
    assert relay.stats[Direction.FORWARD].sent == 30
    assert relay.stats[Direction.BACKWARD].sent == 30
    assert relay.stats[Direction.FORWARD].dropped == 0


def test_drop_everything_forward_only(ends: tuple[socket.socket, socket.socket]) -> None:
    client, server = ends
    with UdpRelay(server.getsockname(), forward=Impairment(drop=1.0)) as relay:
        _send_all(client, relay.address, 20)
        _wait_idle(relay, Direction.FORWARD, 20)
        assert _drain(server, quiet=0.1) == []
    assert relay.stats[Direction.FORWARD].dropped == 20
    assert relay.stats[Direction.FORWARD].sent == 0


def test_duplicate_everything(ends: tuple[socket.socket, socket.socket]) -> None:
    client, server = ends
    with UdpRelay(server.getsockname(), forward=Impairment(duplicate=1.0)) as relay:
        _send_all(client, relay.address, 10)
        _wait_idle(relay, Direction.FORWARD, 10)
        got = _drain(server)
    assert sorted(got) == sorted([b"%d" % i for i in range(10)] * 2)
    assert relay.stats[Direction.FORWARD].duplicated == 10


def test_reorder_swaps_neighbours(ends: tuple[socket.socket, socket.socket]) -> None:
    client, server = ends
    with UdpRelay(server.getsockname(), forward=Impairment(reorder=1.0, reorder_hold=2.0)) as relay:
        _send_all(client, relay.address, 6)
        got = [server.recv(100) for _ in range(6)]
    assert got == [b"1", b"0", b"3", b"2", b"5", b"4"]
    assert relay.stats[Direction.FORWARD].reordered == 3


def test_held_datagram_is_released_without_successor(ends: tuple[socket.socket, socket.socket]) -> None:
    client, server = ends
    with UdpRelay(server.getsockname(), forward=Impairment(reorder=1.0, reorder_hold=0.1)) as relay:
        start = time.monotonic()
        client.sendto(b"lonely", relay.address)
        assert server.recv(100) == b"lonely"
        assert time.monotonic() - start >= 0.09


def test_delay(ends: tuple[socket.socket, socket.socket]) -> None:
    client, server = ends
    with UdpRelay(server.getsockname(), forward=Impairment(delay=0.2)) as relay:
        start = time.monotonic()
        client.sendto(b"x", relay.address)
        assert server.recv(100) == b"x"
        elapsed = time.monotonic() - start
    assert 0.19 <= elapsed < 1.5


def _dropped_pattern(seed: int, n: int = 120) -> set[bytes]:
    client, server = _udp(), _udp()
    try:
        with UdpRelay(server.getsockname(), forward=Impairment(drop=0.5), seed=seed) as relay:
            _send_all(client, relay.address, n)
            _wait_idle(relay, Direction.FORWARD, n)
            got = set(_drain(server, quiet=0.1))
            assert len(got) == relay.stats[Direction.FORWARD].sent
            return got
    finally:
        client.close()
        server.close()


def test_seeded_drops_are_reproducible() -> None:
    first, again, other = _dropped_pattern(7), _dropped_pattern(7), _dropped_pattern(8)
    assert first == again
    assert first != other
    assert 20 < len(first) < 100  # about half of 120 pass


def test_backward_without_client_is_unroutable(ends: tuple[socket.socket, socket.socket]) -> None:
    _, server = ends
    with UdpRelay(server.getsockname()) as relay:
        server.sendto(b"early", relay.source_address)
        _wait_idle(relay, Direction.BACKWARD, 1)
    assert relay.stats[Direction.BACKWARD].unroutable == 1


def test_datagrams_not_from_target_are_ignored(ends: tuple[socket.socket, socket.socket]) -> None:
    client, server = ends
    stranger = _udp()
    try:
        with UdpRelay(server.getsockname()) as relay:
            client.sendto(b"hello", relay.address)
            assert server.recv(100) == b"hello"
            stranger.sendto(b"spoof", relay.source_address)
            server.sendto(b"real", relay.source_address)
            assert client.recv(100) == b"real"
            assert _drain(client, quiet=0.1) == []
    finally:
        stranger.close()


def test_impairment_validation_and_endpoint_parsing() -> None:
    with pytest.raises(ValueError, match="probability"):
        Impairment(drop=1.5)
    with pytest.raises(ValueError, match="negative"):
        Impairment(delay=-1)
    assert parse_endpoint("127.0.0.1:500") == ("127.0.0.1", 500)
    assert parse_endpoint("[::1]:4500") == ("::1", 4500)
    with pytest.raises(ValueError):
        parse_endpoint("nonsense")


def test_command_line_relay(ends: tuple[socket.socket, socket.socket]) -> None:
    client, server = ends
    target = "{}:{}".format(*server.getsockname())
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.relay", "--listen", f"{LOOPBACK}:0", "--target", target],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        word, host, port = proc.stdout.readline().split()
        assert (word, host) == ("listening", LOOPBACK)
        client.sendto(b"via cli", (host, int(port)))
        data, relay_back = server.recvfrom(100)
        assert data == b"via cli"
        server.sendto(b"back", relay_back)
        assert client.recv(100) == b"back"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=5)
    assert proc.returncode == 0
    assert "forward DirectionStats(received=1, sent=1" in out
