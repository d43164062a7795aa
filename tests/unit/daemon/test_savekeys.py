"""``save_keys``: Wireshark's key tables, their files, the warning, and tshark reading them.

The line formats are checked field by field for the suites we negotiate; tshark's own table
loader (which refuses unknown algorithm names and keys of the wrong length) then reads every
line we can write, and decrypts an IKE exchange between two engines with the written keys.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import replace
from ipaddress import ip_address
from pathlib import Path

import pytest

from pyipsec.childsa import ChildSaSpec, EspMode
from pyipsec.config.load import ConfigErrors, parse_config
from pyipsec.crypto.aead import AeadSpec
from pyipsec.crypto.registry import REGISTRY
from pyipsec.daemon.savekeys import ESP_FILE, IKE_FILE, KeyLog, esp_lines, ike_line
from pyipsec.errors import ConfigError
from pyipsec.iana.ikev2 import ProtocolId
from pyipsec.iana.transforms import EncrId, IntegId, KeId, PrfId
from pyipsec.ike.events import ChildSaInstalled, IkeKeysDerived
from pyipsec.ike.keymat import IkeKeys
from pyipsec.ike.proposal import ChosenProposal
from pyipsec.net.addr import Endpoint
from pyipsec.wire.payloads.ts import TrafficSelector
from tests.support.daemons import GW_ADDR, World, psk_configs
from tests.support.daemons import I_ADDR as CLIENT_ADDR
from tests.support.engines import I_ADDR, R_ADDR, EnginePair, psk_connection
from tests.support.wireshark import run_tshark, write_pcap

SPI_I = bytes.fromhex("0102030405060708")
SPI_R = bytes.fromhex("a1a2a3a4a5a6a7a8")


def _key(tag: int, n: int) -> bytes:
    return bytes((tag + i) % 256 for i in range(n))


def _ike_event(encr: EncrId, bits: int | None, integ: IntegId | None) -> IkeKeysDerived:
    espec = REGISTRY.encr(encr, bits)
    alen = 0 if integ is None else REGISTRY.integ(integ).key_len
    keys = IkeKeys(
        sk_d=_key(0x10, 32),
        sk_ai=_key(0x20, alen),
        sk_ar=_key(0x30, alen),
        sk_ei=_key(0x40, espec.keymat_len),
        sk_er=_key(0x50, espec.keymat_len),
        sk_pi=_key(0x60, 32),
        sk_pr=_key(0x70, 32),
    )
    proposal = ChosenProposal(
        1, ProtocolId.IKE, b"", (encr, bits), PrfId.PRF_HMAC_SHA2_256, integ, KeId.CURVE25519
    )
    return IkeKeysDerived(3, "site", SPI_I, SPI_R, proposal, keys)


def _spec(encr: EncrId, bits: int | None, integ: IntegId, *, v6: bool = False) -> ChildSaSpec:
    espec = REGISTRY.encr(encr, bits)
    alen = 0 if integ == IntegId.NONE else REGISTRY.integ(integ).key_len
    local, remote = ("2001:db8::1", "2001:db8::2") if v6 else ("192.0.2.1", "192.0.2.2")
    return ChildSaSpec(
        spi_in=bytes.fromhex("c1000001"),
        spi_out=bytes.fromhex("c2000002"),
        encr=encr,
        encr_key_bits=espec.key_bits,
        integ=integ,
        esn=False,
        mode=EspMode.TUNNEL,
        local_ts=(TrafficSelector.from_network("10.1.0.0/16"),),
        remote_ts=(TrafficSelector.from_network("10.2.0.0/16"),),
        local=Endpoint(ip_address(local), 4500),
        remote=Endpoint(ip_address(remote), 4500),
        encap=True,
        replay_window=64,
        encr_key_in=_key(0x80, espec.keymat_len),
        integ_key_in=_key(0x90, alen),
        encr_key_out=_key(0xA0, espec.keymat_len),
        integ_key_out=_key(0xB0, alen),
    )


def _installed(spec: ChildSaSpec) -> ChildSaInstalled:
    chosen = ChosenProposal(
        1, ProtocolId.ESP, spec.spi_out, (spec.encr, spec.encr_key_bits), integ=spec.integ
    )
    return ChildSaInstalled(3, "site", "net", 1, chosen, spec)


def _fields(line: str) -> list[str]:
    return [f.strip('"') for f in line.split(",")]


# -- line formats ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("bits", "name"), [(128, "AES-GCM-128"), (256, "AES-GCM-256")])
def test_ike_line_aes_gcm_16(bits: int, name: str) -> None:
    e = _ike_event(EncrId.ENCR_AES_GCM_16, bits, None)
    line = ike_line(e)
    assert line is not None
    f = _fields(line)
    assert f == [
        SPI_I.hex(),
        SPI_R.hex(),
        e.keys.sk_ei.hex(),  # key and salt
        e.keys.sk_er.hex(),
        f"{name} with 16 octet ICV [RFC5282]",
        "",
        "",
        "NONE [RFC4306]",
    ]
    assert len(bytes.fromhex(f[2])) == bits // 8 + 4
    assert line.count('"') == 4  # the algorithm names are quoted, hex is bare


def test_ike_line_aes_cbc_hmac_sha256() -> None:
    e = _ike_event(EncrId.ENCR_AES_CBC, 128, IntegId.AUTH_HMAC_SHA2_256_128)
    line = ike_line(e)
    assert line is not None
    assert _fields(line) == [
        SPI_I.hex(),
        SPI_R.hex(),
        e.keys.sk_ei.hex(),
        e.keys.sk_er.hex(),
        "AES-CBC-128 [RFC3602]",
        e.keys.sk_ai.hex(),
        e.keys.sk_ar.hex(),
        "HMAC_SHA2_256_128 [RFC4868]",
    ]


def test_ike_line_unchecked_integrity_takes_no_key() -> None:
    line = ike_line(_ike_event(EncrId.ENCR_AES_CBC, 256, IntegId.AUTH_AES_XCBC_96))
    assert line is not None
    f = _fields(line)
    assert f[4:] == ["AES-CBC-256 [RFC3602]", "", "", "ANY 96-bits of Authentication [No Checking]"]


@pytest.mark.parametrize("bits", [128, 256])
def test_esp_lines_aes_gcm_16(bits: int) -> None:
    spec = _spec(EncrId.ENCR_AES_GCM_16, bits, IntegId.NONE)
    inbound, outbound = esp_lines(spec)
    assert _fields(inbound) == [
        "IPv4",
        "192.0.2.2",  # the peer sends to us on our SPI
        "192.0.2.1",
        "0xc1000001",
        "AES-GCM with 16 octet ICV [RFC4106]",
        "0x" + spec.encr_key_in.hex(),  # with the 4-octet salt (RFC 4106 §8.1)
        "NULL",
        "",
    ]
    assert _fields(outbound) == [
        "IPv4",
        "192.0.2.1",
        "192.0.2.2",
        "0xc2000002",
        "AES-GCM with 16 octet ICV [RFC4106]",
        "0x" + spec.encr_key_out.hex(),
        "NULL",
        "",
    ]
    assert len(spec.encr_key_in) == bits // 8 + 4
    assert all(line.count('"') == 16 for line in (inbound, outbound))  # every field quoted


def test_esp_lines_aes_cbc_hmac_sha256_ipv6() -> None:
    spec = _spec(EncrId.ENCR_AES_CBC, 256, IntegId.AUTH_HMAC_SHA2_256_128, v6=True)
    inbound, outbound = esp_lines(spec)
    assert _fields(inbound) == [
        "IPv6",
        "2001:db8::2",
        "2001:db8::1",
        "0xc1000001",
        "AES-CBC [RFC3602]",
        "0x" + spec.encr_key_in.hex(),
        "HMAC-SHA-256-128 [RFC4868]",
        "0x" + spec.integ_key_in.hex(),
    ]
    assert _fields(outbound)[1:4] == ["2001:db8::1", "2001:db8::2", "0xc2000002"]
    assert _fields(outbound)[5::2] == ["0x" + spec.encr_key_out.hex(), "0x" + spec.integ_key_out.hex()]


def test_chacha20_poly1305_is_not_written_wireshark_cannot_decrypt_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Wireshark 4.0 has ChaCha20-Poly1305 neither for IKEv2 nor for ESP: no line, one warning."""
    spec = _spec(EncrId.ENCR_CHACHA20_POLY1305, 256, IntegId.NONE)
    ike = _ike_event(EncrId.ENCR_CHACHA20_POLY1305, None, None)
    assert esp_lines(spec) == ()
    assert ike_line(ike) is None
    log = KeyLog(tmp_path / "keys")
    with caplog.at_level(logging.WARNING, logger="pyipsec.daemon.savekeys"):
        for _ in range(3):
            log.feed(_installed(spec))
            log.feed(ike)
    assert not (tmp_path / "keys" / ESP_FILE).exists() and not (tmp_path / "keys" / IKE_FILE).exists()
    skipped = [r.getMessage() for r in caplog.records if "cannot decrypt" in r.getMessage()]
    assert len(skipped) == 2, skipped  # once per algorithm, not per SA
    assert "ENCR_CHACHA20_POLY1305" in skipped[0] and "CHACHA20_POLY1305" in skipped[1]


# -- files, modes, warning ------------------------------------------------------------------------


def test_files_are_private_and_appended(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    old = os.umask(0)  # the modes must not depend on a lax umask
    try:
        with caplog.at_level(logging.WARNING, logger="pyipsec.daemon.savekeys"):
            log = KeyLog(tmp_path / "a" / "keys")
            first = _ike_event(EncrId.ENCR_AES_GCM_16, 256, None)
            second = replace(first, spi_i=bytes(7) + b"\x01")
            log.feed(first)
            log.feed(_installed(_spec(EncrId.ENCR_AES_GCM_16, 128, IntegId.NONE)))
            log.feed(second)
    finally:
        os.umask(old)
    d = tmp_path / "a" / "keys"
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    for name in (IKE_FILE, ESP_FILE):
        assert stat.S_IMODE((d / name).stat().st_mode) == 0o600
    ike = (d / IKE_FILE).read_text().splitlines()
    assert ike == [ike_line(first), ike_line(second)]
    assert len((d / ESP_FILE).read_text().splitlines()) == 2
    # the warning, with the directory, and no key anywhere in the log
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.getMessage() == (
        f"save_keys: writing IKE and ESP keys to {d} — anyone who reads them can decrypt the traffic"
    )
    assert first.keys.sk_ei.hex() not in caplog.text

    # a file that exists with a wider mode is narrowed; lines are appended to what is there
    (d / IKE_FILE).chmod(0o644)
    KeyLog(d).feed(first)
    assert stat.S_IMODE((d / IKE_FILE).stat().st_mode) == 0o600
    assert len((d / IKE_FILE).read_text().splitlines()) == 3


def test_a_file_in_the_way_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "keys").write_text("")
    with pytest.raises(ConfigError, match=r"settings\.save_keys: .*keys is not a directory"):
        KeyLog(tmp_path / "keys")


def test_setting_is_relative_to_the_config_file_and_off_by_default(tmp_path: Path) -> None:
    assert parse_config({}, base_dir=tmp_path).settings.save_keys is None
    cfg = parse_config({"settings": {"save_keys": "wireshark"}}, base_dir=tmp_path)
    assert cfg.settings.save_keys == tmp_path / "wireshark"
    absolute = parse_config({"settings": {"save_keys": "/var/tmp/k"}}, base_dir=tmp_path)
    assert absolute.settings.save_keys == Path("/var/tmp/k")
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigErrors, match=r"settings\.save_keys: not a directory"):
        parse_config({"settings": {"save_keys": "file"}}, base_dir=tmp_path)


# -- tshark reads them ----------------------------------------------------------------------------


def _ike_suites() -> list[tuple[EncrId, int | None, IntegId | None]]:
    out: list[tuple[EncrId, int | None, IntegId | None]] = []
    integs = sorted(REGISTRY.supported(3))
    for encr in sorted(REGISTRY.supported(1)):
        for bits in REGISTRY.key_sizes(encr) or (None,):
            if isinstance(REGISTRY.encr(encr, bits), AeadSpec):
                out.append((EncrId(encr), bits, None))
            else:
                out.extend((EncrId(encr), bits, IntegId(i)) for i in integs if i != IntegId.NONE)
    return out


def test_tshark_loads_every_line_we_write(tmp_path: Path) -> None:
    """Every suite we negotiate either gets lines tshark's table loader accepts (names, key
    lengths) or none; the ones Wireshark cannot decrypt are exactly the expected few."""
    keys = tmp_path / "keys"
    log = KeyLog(keys)
    skipped_ike, skipped_esp = set(), set()
    for encr, bits, integ in _ike_suites():
        e = _ike_event(encr, bits, integ)
        if ike_line(e) is None:
            skipped_ike.add(encr)
        log.feed(e)
        for v6 in (False, True):
            spec = _spec(encr, bits, integ or IntegId.NONE, v6=v6)
            if not esp_lines(spec):
                skipped_esp.add(encr)
            log.feed(_installed(spec))
    assert skipped_ike == {EncrId.ENCR_CHACHA20_POLY1305}
    assert skipped_esp <= {
        EncrId.ENCR_CHACHA20_POLY1305,
        EncrId.ENCR_AES_CCM_8,
        EncrId.ENCR_AES_CCM_12,
        EncrId.ENCR_AES_CCM_16,
    }
    assert EncrId.ENCR_CHACHA20_POLY1305 in skipped_esp
    assert len((keys / IKE_FILE).read_text().splitlines()) > 10
    empty = tmp_path / "empty.pcap"
    write_pcap(empty, [])
    run_tshark(empty, keys, tmp_path / "home")  # fails on "Error loading table"

    # the check has teeth: a wrong key length is refused
    bad = tmp_path / "bad"
    bad.mkdir()
    line = ike_line(_ike_event(EncrId.ENCR_AES_GCM_16, 256, None))
    assert line is not None
    f = line.split(",")
    f[3] += "00"  # SK_er one octet too long
    (bad / IKE_FILE).write_text(",".join(f) + "\n")
    done = run_tshark(empty, bad, tmp_path / "home2", check_tables=False)
    assert "Error loading table" in done.stderr and "SK_er (37 octets)" in done.stderr


def test_tshark_decrypts_ike_auth_between_two_engines(tmp_path: Path) -> None:
    """The written keys are the right ones: tshark shows the identities inside IKE_AUTH."""
    i = psk_connection(
        "site",
        local_id="moon.strongswan.test",
        remote_id="sun.strongswan.test",
        local_addr=I_ADDR,
        remote_addr=R_ADDR,
    )
    r = psk_connection(
        "site",
        local_id="sun.strongswan.test",
        remote_id="moon.strongswan.test",
        local_addr=R_ADDR,
        remote_addr=I_ADDR,
        local_ts="10.2.0.0/16",
        remote_ts="10.1.0.0/16",
    )
    p = EnginePair(i, [r], responder_settings={"export_ike_keys": True})
    p.initiate()
    p.run(until=5)
    assert p.r.of(ChildSaInstalled)
    keys = tmp_path / "keys"
    log = KeyLog(keys)
    for e in p.r.events:
        log.feed(e)
    pcap = tmp_path / "ike.pcap"
    write_pcap(pcap, p.sent)
    ike_auth = "isakmp.exchangetype == 35"
    fields = ["-Y", ike_auth, "-T", "fields", "-e", "isakmp.id.data.fqdn", "-e", "isakmp.ts.start_ipv4"]
    without = run_tshark(pcap, tmp_path / "nokeys", tmp_path / "h0", fields)
    assert "strongswan.test" not in without.stdout
    request, response = run_tshark(pcap, keys, tmp_path / "h1", fields).stdout.splitlines()
    # IDi (and IDr, the one we want), TSi, TSr; IDr and the narrowed selectors back
    assert request.split("\t") == ["moon.strongswan.test,sun.strongswan.test", "10.1.0.0,10.2.0.0"]
    assert response.split("\t") == ["sun.strongswan.test", "10.1.0.0,10.2.0.0"]


# -- the daemon writes them -----------------------------------------------------------------------


def test_the_runtime_writes_every_sa_it_installs_rekeys_and_reauthentications(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Through the real runtime (memory network): the first IKE and Child SA, a Child SA
    rekey, an IKE SA rekey and a reauthentication each add their lines; the gateway, without
    ``save_keys``, writes nothing and its engine hands out no IKE keys."""
    keys = tmp_path / "wireshark"
    client_cfg, gw_cfg = psk_configs(tmp_path, client={"settings": {"save_keys": str(keys)}})
    with caplog.at_level(logging.DEBUG):
        client, gw = world.node(client_cfg, CLIENT_ADDR), world.node(gw_cfg, GW_ADDR)
        assert world.command(client, "up", {"name": "office"})["ok"] is True
        assert gw.runtime.keylog is None and not gw.runtime.engine.config.export_ike_keys

        def tables() -> tuple[list[str], list[str]]:
            return (keys / IKE_FILE).read_text().splitlines(), (keys / ESP_FILE).read_text().splitlines()

        ike, esp = tables()
        (sa,) = client.sas()
        (spi_in,) = client.child_spis()
        assert len(ike) == 1 and ike[0].startswith(f"{sa.spi_i.hex()},{sa.spi_r.hex()},")
        assert len(esp) == 2 and f'"0x{spi_in.hex()}"' in esp[0]

        world.command(client, "rekey", {"name": "office"})
        world.run_for(5)
        world.command(client, "rekey", {"name": "office", "ike": True})
        world.run_for(5)
        (rekeyed,) = client.sas()
        assert rekeyed.sa_id != sa.sa_id
        world.command(client, "rekey", {"name": "office", "reauth": True})
        world.run_for(5)
        (reauth,) = client.sas()
        (child_now,) = client.child_spis()
        ike, esp = tables()
        # IKE: first, rekeyed, reauthenticated; ESP: two lines per Child SA (first, rekeyed, reauth's)
        assert [line.split(",")[:2] for line in ike] == [
            [s.spi_i.hex(), s.spi_r.hex()] for s in (sa, rekeyed, reauth)
        ]
        assert len(esp) == 6 and f'"0x{child_now.hex()}"' in esp[-2]
    lines = caplog.text
    assert lines.count("save_keys: writing IKE and ESP keys") == 1
    for line in ike + esp:
        for field in line.split(","):
            value = field.strip('"').removeprefix("0x")
            if len(value) >= 32:
                assert value not in lines
