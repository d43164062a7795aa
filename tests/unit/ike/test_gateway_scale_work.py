"""A gateway's work per client does not grow with the number of clients (issue 13, found by
bench/loadgen.py).

With 250 established road warriors (each its own identity and PSK) on one responder, spies count
the work one more client causes: the SAs its IKE_AUTH compares with (``IkeSa.same_peer``: the
reauthentication and INITIAL_CONTACT checks, the virtual-IP take-over), the full SA listings
(``IkeEngine.sas``), the PSKs scored to find its key (``SharedSecret.score``); the same for a
client leaving (``replacement_for`` of its Child SA) and for a data-plane lifetime signal
(``handle_signal``). Before, each of them looked at every SA or every secret.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import replace

import pytest

from pyipsec.ike.config import EngineConfig, Identity
from pyipsec.ike.credentials import MemoryCredentials, SharedSecret
from pyipsec.ike.engine import IkeEngine
from pyipsec.ike.events import ChildSaInstalled, ChildSaSignal, IkeSaClosed, IkeSaEstablished, SignalKind
from pyipsec.ike.sa import IkeSa
from pyipsec.ike.state import IkeSaState
from tests.support.engines import I_ADDR, R_ADDR, EnginePair, psk_connection

N = 250


def _key(k: int) -> bytes:
    return f"a pre-shared key for client {k} only".encode()


class Spies:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: Counter[str] = Counter()
        for owner, name in ((IkeSa, "same_peer"), (IkeEngine, "sas"), (SharedSecret, "score")):
            real = getattr(owner, name)

            def spy(*args: object, _real: object = real, _name: str = name, **kw: object) -> object:
                self.calls[_name] += 1
                return _real(*args, **kw)  # type: ignore[operator]

            monkeypatch.setattr(owner, name, spy)


@pytest.fixture(scope="module")
def gateway() -> Iterator[EnginePair]:
    """250 established clients c0 … c249, a PSK each (the gateway holds all 250 keys)."""
    base = psk_connection(
        "c0", local_id="c0.test", remote_id="gw.test", local_addr=I_ADDR, remote_addr=R_ADDR, dpd_delay=30.0
    )
    gw = psk_connection(
        "gw",
        local_id="gw.test",
        remote_id="c0.test",
        local_addr=R_ADDR,
        remote_addr="%any",
        local_ts="10.2.0.0/16",
        remote_ts="10.1.0.0/16",
        dpd_delay=30.0,
    )
    gw = replace(gw, remote=replace(gw.remote, identity=Identity.any()))
    i_creds = MemoryCredentials([SharedSecret(_key(k), (Identity.fqdn(f"c{k}.test"),)) for k in range(N + 1)])
    r_creds = MemoryCredentials([SharedSecret(_key(k), (Identity.fqdn(f"c{k}.test"),)) for k in range(N + 1)])
    p = EnginePair(base, [gw], i_creds=i_creds, r_creds=r_creds)
    conns = {
        f"c{k}": replace(base, name=f"c{k}", local=replace(base.local, identity=Identity.fqdn(f"c{k}.test")))
        for k in range(N + 1)
    }
    p.i.engine.reconfigure(EngineConfig(conns))
    for k in range(N):
        p.now = k * 0.01
        p.i.initiate(f"c{k}")
        while p.deliver():
            pass
    assert len(p.r.of(IkeSaEstablished)) == N == len(p.r.engine.sas())
    yield p


def test_one_more_client_is_compared_with_no_other_sa(
    gateway: EnginePair, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = gateway
    before = len(p.r.of(IkeSaEstablished))
    spies = Spies(monkeypatch)
    p.i.initiate(f"c{N}")
    while p.deliver():
        pass
    assert len(p.r.of(IkeSaEstablished)) == before + 1  # it did set up, with its own key
    assert spies.calls["sas"] == 0
    assert spies.calls["same_peer"] <= 2
    assert spies.calls["score"] <= 4  # its key, on each side, found by identity


def test_a_client_leaving_is_compared_with_no_other_sa(
    gateway: EnginePair, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = gateway
    victim = next(s for s in p.i.engine.sas() if s.name == "c7" and s.state is IkeSaState.ESTABLISHED)
    closed = len(p.r.of(IkeSaClosed))
    spies = Spies(monkeypatch)
    p.i.terminate(victim.sa_id)
    while p.deliver():
        pass
    assert len(p.r.of(IkeSaClosed)) == closed + 1
    assert spies.calls["sas"] == 0
    assert spies.calls["same_peer"] <= 2


def test_a_lifetime_signal_finds_its_child_sa_without_a_scan(
    gateway: EnginePair, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = gateway
    installed = [e for e in p.r.of(ChildSaInstalled) if isinstance(e, ChildSaInstalled)]
    target = installed[100]
    spies = Spies(monkeypatch)
    out = p.r.engine.handle_signal(ChildSaSignal(target.spec.spi_in, SignalKind.SOFT_LIFETIME), p.now)
    assert spies.calls["sas"] == 0
    assert len(out.datagrams) == 1  # the CREATE_CHILD_SA request that rekeys it
    assert str(out.datagrams[0].remote.ip) == I_ADDR
    p.emit(p.r, out)  # let the rekey finish, so that the module's SAs stay clean
    while p.deliver():
        pass
    assert p.r.engine.audit() == []


def test_a_psk_is_found_by_identity_among_many() -> None:
    secrets = [SharedSecret(_key(k), (Identity.fqdn(f"c{k}.test"),)) for k in range(1000)]
    generic = SharedSecret(b"a key for anyone else at all")
    creds = MemoryCredentials([*secrets, generic])
    gw = Identity.fqdn("gw.test")
    assert creds.shared_key(gw, Identity.fqdn("c731.test")) == _key(731)
    assert creds.shared_key(gw, Identity.fqdn("stranger.test")) == generic.secret
    both = SharedSecret(b"the key for c5 and gw together", (Identity.fqdn("c5.test"), gw))
    creds.add_secret(both)
    assert creds.shared_key(gw, Identity.fqdn("c5.test")) == both.secret  # the more specific one
    # of equally specific keys the first one added wins, as before
    creds.add_secret(SharedSecret(b"a second key for c9, added later", (Identity.fqdn("c9.test"),)))
    assert creds.shared_key(gw, Identity.fqdn("c9.test")) == _key(9)


def test_established_sas_keep_no_ike_sa_init_messages(gateway: EnginePair) -> None:
    """They were signed in IKE_AUTH and are not needed after it (memory per SA)."""
    for engine in (gateway.i.engine, gateway.r.engine):
        established = [s for s in engine.sas() if s.state is IkeSaState.ESTABLISHED]
        assert len(established) >= N - 1
        assert all(s.init_request == b"" and s.init_response == b"" for s in established)


def test_whether_a_connection_has_sas_is_counted_not_scanned(
    gateway: EnginePair, monkeypatch: pytest.MonkeyPatch
) -> None:
    spies = Spies(monkeypatch)
    gw, client = gateway.r.engine, gateway.i.engine
    assert gw.has_sas("gw") and gw.has_sas("gw", original_initiator=False)
    assert not gw.has_sas("gw", original_initiator=True) and not gw.has_sas("nope")
    assert client.has_sas("c3", original_initiator=True) and not client.has_sas(
        "c3", original_initiator=False
    )
    assert spies.calls["sas"] == 0
