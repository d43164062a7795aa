"""EapTlsServer and EapTlsPeer in memory: TLS 1.2 and 1.3, RSA and ECDSA, fragmentation, the keys
(cross-checked against an own TLS 1.2 PRF), and every way either side can misbehave."""

from __future__ import annotations

import hmac

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from pyipsec.errors import EapError
from pyipsec.iana.ikev2 import EapCode, EapType
from pyipsec.ike.eap import EapOutcome, EapPeer, EapServer, EapTlsPeer, EapTlsServer, TlsVersion, tls_link
from pyipsec.ike.eap.tls_frag import FLAG_L, FLAG_M, FLAG_S, MAX_MESSAGE_LEN, EapTlsFrame
from pyipsec.wire.payloads.eap import EapMessage
from pyipsec.wire.payloads.ident import Identification
from tests.support.pki import make_ca, make_end_entity
from tests.unit.eap._support import request, response
from tests.unit.eap._tls_support import USER, pki, run, server, valid_now
from tests.unit.eap._tls_support import peer as make_peer

VERSIONS = [TlsVersion.TLS1_2, TlsVersion.TLS1_3]


def tls_frames(packets: list[bytes]) -> list[EapTlsFrame]:
    out = []
    for packet in packets:
        msg = EapMessage.decode(packet)
        if msg.eap_type == EapType.TLS:
            out.append(EapTlsFrame.decode(msg.type_data))
    return out


def assert_success(s: EapTlsServer, p: EapTlsPeer, version: TlsVersion) -> None:
    assert s.outcome is EapOutcome.SUCCESS, s.reason
    assert p.outcome is EapOutcome.SUCCESS, p.reason
    assert s.reason == p.reason == ""
    assert len(s.msk) == 64 and len(s.emsk) == 64
    assert s.msk == p.msk and s.emsk == p.emsk and s.msk != s.emsk
    assert s.session_id == p.session_id and s.session_id[0] == EapType.TLS
    assert s.tls_version is p.tls_version is version


def assert_failed(side: EapServer | EapPeer, *words: str) -> None:
    assert side.outcome is EapOutcome.FAILURE
    assert side.msk == b""
    for word in words:
        assert word in side.reason, side.reason


def started(version: TlsVersion = TlsVersion.TLS1_3, **kwargs: object) -> tuple[EapTlsServer, int]:
    """A server that has sent EAP-TLS Start; the Identifier to answer."""
    s = server(max_version=version, **kwargs)
    first = s.start()
    start = s.process(response(first[1], EapType.IDENTITY, USER.encode()))
    frame = tls_frames([start])[0]
    assert frame.start and frame.data == b"" and frame.tls_length is None
    return s, start[1]


def tls_response(identifier: int, flags: int = 0, length: int | None = None, data: bytes = b"") -> bytes:
    return response(identifier, EapType.TLS, EapTlsFrame(flags, length, data).encode())


def tls_request(identifier: int, flags: int = 0, length: int | None = None, data: bytes = b"") -> bytes:
    return request(identifier, EapType.TLS, EapTlsFrame(flags, length, data).encode())


# -- success -----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("key", ["p256", "rsa2048"])
def test_both_sides_succeed_with_the_same_keys(version: TlsVersion, key: str) -> None:
    p = pki(key)  # type: ignore[arg-type]
    s, c = server(p, max_version=version), make_peer(p)
    assert isinstance(s, EapServer) and isinstance(c, EapPeer)
    t = run(s, c)
    assert_success(s, c, version)
    assert s.identity == USER
    assert s.peer_certificate == p.client.der
    assert EapMessage.decode(t.requests[-1]).code == EapCode.SUCCESS
    first = EapMessage.decode(t.requests[0])
    assert first.eap_type == EapType.IDENTITY and EapMessage.decode(t.responses[0]).type_data == USER.encode()


@pytest.mark.parametrize("version", VERSIONS)
def test_peer_max_version_caps_the_negotiation(version: TlsVersion) -> None:
    s, c = server(), make_peer(max_version=version)
    run(s, c)
    assert_success(s, c, version)


def test_keys_differ_per_run() -> None:
    runs = []
    for _ in range(2):
        s, c = server(), make_peer()
        run(s, c)
        runs.append((s.msk, s.emsk, s.session_id))
    assert runs[0][0] != runs[1][0] and runs[0][1] != runs[1][1] and runs[0][2] != runs[1][2]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("size", [64, 100, 333, 1024, 1398])
def test_fragmentation_with_a_two_certificate_chain(version: TlsVersion, size: int) -> None:
    s, c = server(max_version=version, fragment_size=size), make_peer(fragment_size=size)
    t = run(s, c)
    assert_success(s, c, version)
    for frames in (tls_frames(t.requests), tls_frames(t.responses)):
        assert all(len(f.data) <= size for f in frames)
        # A fragmented flight: L with the total on the first fragment, M on all but the last.
        flight: list[EapTlsFrame] = []
        for f in (f for f in frames if not f.is_ack and not f.start):
            flight.append(f)
            if f.more:
                continue
            if len(flight) > 1:
                assert flight[0].tls_length == sum(len(x.data) for x in flight)
                assert all(x.tls_length is None for x in flight[1:])
            else:
                assert flight[0].tls_length in (None, len(flight[0].data))
            flight = []
        assert flight == []
    more = sum(1 for f in tls_frames(t.requests) if f.more)
    acks = sum(1 for f in tls_frames(t.responses) if f.is_ack)
    assert acks == more + 1  # each fragment with M, and the final empty Response
    if size <= 333:  # the server's flight with its two-certificate chain needs several
        assert more >= 2


def test_fragment_acks_alternate_with_fragments() -> None:
    s, c = server(fragment_size=64), make_peer(fragment_size=64)
    t = run(s, c)
    requests, responses = tls_frames(t.requests), tls_frames(t.responses)
    # Each Request with M is answered by an empty Response, and vice versa.
    for i, f in enumerate(requests[:-1]):
        if f.more:
            assert responses[i].is_ack
    for i, f in enumerate(responses):
        if f.more:
            assert requests[i + 1].is_ack and not requests[i + 1].start


def test_identity_as_the_subject_dn_is_accepted() -> None:
    for dn in ("CN=alice,O=pyipsec tests,C=XX", "C=XX, O=pyipsec tests, CN=alice"):
        s, c = server(), make_peer(identity=dn)
        run(s, c)
        assert s.outcome is EapOutcome.SUCCESS, s.reason
        assert s.identity == dn


def test_custom_identity_check_sees_the_certificate_and_identity() -> None:
    seen: list[tuple[bytes, str]] = []

    def check(der: bytes, identity: str) -> str | None:
        seen.append((der, identity))
        return "account locked"

    s, c = server(identity_check=check), make_peer()
    run(s, c)
    assert seen == [(pki().client.der, USER)]
    assert_failed(s, "account locked")
    assert_failed(c, "TLS alert")


def test_reprs_hold_no_key_material() -> None:
    s, c = server(), make_peer()
    run(s, c)
    for text in (repr(s), repr(c)):
        assert s.msk.hex() not in text and s.emsk.hex() not in text
        assert "msk" not in text.lower()


def test_peer_answers_a_retransmitted_request_with_the_same_response() -> None:
    s, c = server(), make_peer()
    ident = s.start()
    r1 = c.process(ident)
    assert r1 is not None
    start = s.process(r1)
    hello = c.process(start)
    assert hello is not None and c.process(start) == hello


# -- key derivation cross-checks --------------------------------------------------------------


def p_hash(digest: str, secret: bytes, seed: bytes, length: int) -> bytes:
    """P_hash of the TLS 1.2 PRF (RFC 5246 §5): SHA-256, or the cipher suite's SHA-384."""
    out, a = b"", seed
    while len(out) < length:
        a = hmac.new(secret, a, digest).digest()
        out += hmac.new(secret, a + seed, digest).digest()
    return out[:length]


@pytest.mark.parametrize(
    ("suite", "digest"),
    [("ECDHE-ECDSA-AES128-GCM-SHA256", "sha256"), ("ECDHE-ECDSA-AES256-GCM-SHA384", "sha384")],
)
def test_tls12_keys_are_the_rfc5216_prf(monkeypatch: pytest.MonkeyPatch, suite: str, digest: str) -> None:
    monkeypatch.setattr(tls_link, "_TLS12_CIPHERS", suite.encode())
    s, c = server(max_version=TlsVersion.TLS1_2), make_peer()
    run(s, c)
    assert_success(s, c, TlsVersion.TLS1_2)
    conn = s._tls.connection  # type: ignore[union-attr]  # test access to the TLS state
    assert conn.get_cipher_name() == suite
    master, cr, sr = conn.master_key(), conn.client_random(), conn.server_random()
    assert master and cr and sr and len(master) == 48
    # RFC 5216 §2.3: Key_Material = TLS-PRF-128(master_secret, "client EAP encryption", cr || sr),
    # the PRF being P_<hash of the cipher suite> (RFC 5246 §5).
    material = p_hash(digest, master, b"client EAP encryption" + cr + sr, 128)
    assert s.msk == material[:64] and s.emsk == material[64:]
    assert s.session_id == bytes([13]) + cr + sr


def test_tls13_keys_are_the_rfc9190_exporter() -> None:
    s, c = server(max_version=TlsVersion.TLS1_3), make_peer()
    run(s, c)
    assert_success(s, c, TlsVersion.TLS1_3)
    for side in (s, c):
        conn = side._tls.connection  # type: ignore[union-attr]
        material = conn.export_keying_material(b"EXPORTER_EAP_TLS_Key_Material", 128, b"\x0d")
        assert side.msk + side.emsk == material
        method_id = conn.export_keying_material(b"EXPORTER_EAP_TLS_Method-Id", 64, b"\x0d")
        assert side.session_id == b"\x0d" + method_id
        # The context octet matters: without it the exporter gives other keys.
        assert conn.export_keying_material(b"EXPORTER_EAP_TLS_Key_Material", 128) != material


def test_tls13_server_sends_the_commitment_message() -> None:
    s, c = server(max_version=TlsVersion.TLS1_3), make_peer()
    t = run(s, c)
    # The last EAP-TLS Request carries TLS records ending with an application data record
    # (type 23): the commitment message; the peer's answer to it is empty.
    last = tls_frames(t.requests)[-1]
    assert last.data and last.data[0] in (22, 23)
    assert tls_frames(t.responses)[-1].is_ack


# -- certificate failures ---------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_client_certificate_from_another_ca(version: TlsVersion) -> None:
    other = make_ca("another root")
    stranger = make_end_entity(other, "alice", emails=[USER], **valid_now())
    s = server(max_version=version)
    c = make_peer(cert=stranger.der, key=stranger.key, chain=())
    run(s, c)
    assert_failed(s, "client certificate", "unable to get local issuer")
    assert_failed(c, "TLS alert: unknown CA")


@pytest.mark.parametrize("version", VERSIONS)
def test_expired_client_certificate(version: TlsVersion) -> None:
    p = pki()
    old = valid_now()
    expired = make_end_entity(
        p.intermediate,
        "alice",
        emails=[USER],
        not_before=old["not_before"].replace(year=old["not_before"].year - 2),
        not_after=old["not_before"].replace(year=old["not_before"].year - 1),
    )
    s, c = server(max_version=version), make_peer(cert=expired.der, key=expired.key)
    run(s, c)
    assert_failed(s, "certificate has expired")
    assert_failed(c, "TLS alert: certificate expired")


@pytest.mark.parametrize("version", VERSIONS)
def test_no_client_certificate(version: TlsVersion) -> None:
    s, c = server(max_version=version), make_peer(cert=None, key=None, chain=())
    run(s, c)
    assert_failed(s, "peer sent no certificate")
    assert_failed(c, "TLS alert")


@pytest.mark.parametrize("version", VERSIONS)
def test_identity_not_in_the_certificate(version: TlsVersion) -> None:
    s, c = server(max_version=version), make_peer(identity="mallory@example.test")
    run(s, c)
    assert_failed(s, "'mallory@example.test' is not bound")
    assert_failed(c, "TLS alert")
    assert s.peer_certificate is None


@pytest.mark.parametrize("version", VERSIONS)
def test_server_certificate_without_the_expected_name(version: TlsVersion) -> None:
    s, c = server(max_version=version), make_peer(server_name="vpn.other.test")
    run(s, c)
    assert_failed(c, "does not name 'vpn.other.test'")
    assert_failed(s, "TLS alert")


def test_server_certificate_from_an_unknown_ca() -> None:
    other = make_ca("another root")
    s, c = server(), make_peer(ca_certs=(other.der,))
    run(s, c)
    assert_failed(c, "server certificate", "rejected")
    assert_failed(s, "TLS alert: unknown CA")


def test_server_name_check_is_optional() -> None:
    s, c = server(), make_peer(server_name=None)
    run(s, c)
    assert s.outcome is c.outcome is EapOutcome.SUCCESS


# -- framing failures on the server -----------------------------------------------------------


def test_length_flag_lying_short() -> None:
    s, ident = started()
    out = s.process(tls_response(ident, FLAG_L, 100, b"\x16" * 50))
    assert EapMessage.decode(out).code == EapCode.FAILURE
    assert_failed(s, "TLS Message Length 100", "50 octets")


def test_length_flag_lying_long() -> None:
    s, ident = started()
    out = s.process(tls_response(ident, FLAG_L | FLAG_M, 10, b"\x16" * 50))
    assert EapMessage.decode(out).code == EapCode.FAILURE
    assert_failed(s, "more than the announced")


def test_length_changed_between_fragments() -> None:
    s, ident = started()
    ack = s.process(tls_response(ident, FLAG_L | FLAG_M, 200, b"\x16" * 100))
    assert tls_frames([ack])[0].is_ack and s.outcome is EapOutcome.CONTINUE
    s.process(tls_response(ack[1], FLAG_L | FLAG_M, 300, b"\x16" * 100))
    assert_failed(s, "changed from 200 to 300")


def test_announced_length_beyond_the_limit() -> None:
    s, ident = started()
    s.process(tls_response(ident, FLAG_L | FLAG_M, MAX_MESSAGE_LEN + 1, b"\x16" * 100))
    assert_failed(s, "exceeds the limit")


def test_fragments_beyond_the_reassembly_limit() -> None:
    s, ident = started()
    chunk = b"\x16" * 1000
    for _ in range(MAX_MESSAGE_LEN // len(chunk) + 2):
        out = s.process(tls_response(ident, FLAG_M, None, chunk))
        if s.outcome is not EapOutcome.CONTINUE:
            break
        ident = out[1]
    assert_failed(s, "exceeds the limit")


def test_tiny_fragments_beyond_the_fragment_count() -> None:
    s, ident = started()
    for _ in range(5000):
        out = s.process(tls_response(ident, FLAG_M, None, b"\x16"))
        if s.outcome is not EapOutcome.CONTINUE:
            break
        ident = out[1]
    assert_failed(s, "fragments")


def test_empty_fragment_with_more_flag() -> None:
    s, ident = started()
    s.process(tls_response(ident, FLAG_M))
    assert_failed(s, "empty EAP-TLS fragment")


def test_ack_where_data_is_due() -> None:
    s, ident = started()
    s.process(tls_response(ident))
    assert_failed(s, "empty EAP-TLS Response")


def test_ack_flood_after_the_server_flight() -> None:
    s, c = server(fragment_size=64), make_peer(fragment_size=64)
    ident = s.start()
    packet = s.process(c.process(ident) or b"")  # Start
    while True:  # run until the server sends a fragment with M (its first flight)
        answer = c.process(packet)
        assert answer is not None
        packet = s.process(answer)
        if tls_frames([packet])[0].more:
            break
    # ACK every fragment the server sends, then one ACK more where the client's data is due.
    for _ in range(1000):
        frame = tls_frames([packet])[0]
        packet = s.process(tls_response(packet[1]))
        if not frame.more:
            break
    assert_failed(s, "empty EAP-TLS Response")


def test_tls_data_instead_of_an_ack() -> None:
    s, c = server(fragment_size=64), make_peer(fragment_size=4000)
    ident = s.start()
    packet = s.process(c.process(ident) or b"")
    answer = c.process(packet)  # ClientHello in one message (peer fragment size 1024)
    assert answer is not None
    packet = s.process(answer)
    assert tls_frames([packet])[0].more
    s.process(tls_response(packet[1], 0, None, b"\x16\x03\x03"))
    assert_failed(s, "instead of the ACK")


def test_garbage_after_start() -> None:
    s, ident = started()
    out = s.process(tls_response(ident, 0, None, b"GET / HTTP/1.1\r\n\r\n"))
    if s.outcome is EapOutcome.CONTINUE:  # an alert went out first
        assert tls_frames([out])[0].data
        out = s.process(tls_response(out[1]))
    assert EapMessage.decode(out).code == EapCode.FAILURE
    assert_failed(s, "TLS handshake failed")


def test_start_flag_in_a_response() -> None:
    s, ident = started()
    s.process(tls_response(ident, FLAG_S))
    assert_failed(s, "Start")


def test_peer_nak_to_tls() -> None:
    s, ident = started()
    s.process(response(ident, EapType.NAK, bytes([EapType.MSCHAPV2])))
    assert_failed(s, "declined EAP-TLS", "26")


def test_wrong_identifier_and_wrong_type() -> None:
    s, ident = started()
    s.process(tls_response((ident + 1) & 0xFF))
    assert_failed(s, "Identifier")
    s, ident = started()
    s.process(response(ident, EapType.MSCHAPV2, b"\x02"))
    assert_failed(s, "expected an EAP-TLS Response")


def test_server_misuse_raises() -> None:
    s = server()
    with pytest.raises(EapError):
        s.process(b"\x02\x00\x00\x05\x01")
    s.start()
    with pytest.raises(EapError):
        s.start()
    s.process(b"\x01")  # malformed: FAILURE
    with pytest.raises(EapError):
        s.process(b"\x01")


def test_constructor_refuses_unusable_arguments() -> None:
    p = pki()
    with pytest.raises(ValueError, match="CA certificate"):
        server(ca_certs=())
    with pytest.raises(ValueError, match="fragment_size"):
        server(fragment_size=10)
    with pytest.raises(ValueError, match="DER"):
        server(cert=b"not a certificate")
    with pytest.raises(ValueError, match="credentials"):
        server(key=p.client.key)  # does not belong to the gateway certificate
    with pytest.raises(ValueError, match="both"):
        make_peer(cert=None)
    with pytest.raises(ValueError, match="CA certificate"):
        make_peer(ca_certs=())


# -- the peer against a misbehaving gateway ---------------------------------------------------


def peer_after_start(**kwargs: object) -> tuple[EapTlsPeer, bytes]:
    """A peer that has sent its whole ClientHello (one message: TLS 1.3's is about 1.5 KB)."""
    c = make_peer(fragment_size=4000, **kwargs)
    assert c.process(request(7, EapType.IDENTITY)) is not None
    hello = c.process(tls_request(8, FLAG_S))
    assert hello is not None
    return c, hello


def test_peer_refuses_early_success() -> None:
    c, _hello = peer_after_start()
    assert c.process(bytes([EapCode.SUCCESS, 8, 0, 4])) is None
    assert_failed(c, "EAP-Success before the TLS handshake")


def test_peer_refuses_success_before_the_tls13_commitment() -> None:
    """RFC 9190 §2.5: in TLS 1.3 the peer's handshake is done before the server has checked the
    client certificate; only the commitment message may lead to EAP-Success."""
    s, c = server(max_version=TlsVersion.TLS1_3), make_peer()
    packet = s.start()
    last_response = b""
    while True:
        answer = c.process(packet)
        assert answer is not None
        last_response = answer
        packet = s.process(answer)
        if s._state.name == "WAIT_FINAL":  # the server's flight with the commitment is out
            break
    assert c.outcome is EapOutcome.CONTINUE
    assert c.process(bytes([EapCode.SUCCESS, last_response[1], 0, 4])) is None
    assert_failed(c, "EAP-Success before the TLS 1.3 commitment message")


def test_peer_refuses_start_twice_and_start_with_data() -> None:
    c, _ = peer_after_start()
    c.process(tls_request(9, FLAG_S))
    assert_failed(c, "Start in the middle")
    c = make_peer()
    c.process(tls_request(9, FLAG_S, None, b"\x16"))
    assert_failed(c, "Start that carries data")


def test_peer_refuses_tls_before_start() -> None:
    c = make_peer()
    c.process(tls_request(9, 0, None, b"\x16\x03\x03"))
    assert_failed(c, "before EAP-TLS Start")


def test_peer_ack_where_data_is_due() -> None:
    c, _ = peer_after_start()
    c.process(tls_request(9))
    assert_failed(c, "empty EAP-TLS Request")


def test_peer_garbage_from_the_gateway_sends_an_alert() -> None:
    c, _ = peer_after_start()
    out = c.process(tls_request(9, 0, None, b"\x16\x03\x03\x00\x05hello"))
    assert_failed(c, "TLS handshake failed")
    assert out is not None and tls_frames([out])[0].data  # the alert
    assert c.process(bytes([EapCode.FAILURE, 9, 0, 4])) is None
    assert_failed(c, "TLS handshake failed")
    with pytest.raises(EapError):
        c.process(bytes([EapCode.FAILURE, 9, 0, 4]))


def test_peer_reassembly_limit() -> None:
    c, _ = peer_after_start()
    ident = 9
    for _ in range(100):
        c.process(tls_request(ident, FLAG_M, None, b"\x16" * 1000))
        if c.outcome is not EapOutcome.CONTINUE:
            break
        ident = (ident + 1) & 0xFF
    assert_failed(c, "exceeds the limit")


def test_peer_naks_other_methods_before_start() -> None:
    c = make_peer()
    out = c.process(request(3, EapType.MSCHAPV2, b"\x01"))
    assert out == response(3, EapType.NAK, bytes([EapType.TLS]))
    assert c.outcome is EapOutcome.CONTINUE


def test_peer_reuse_of_an_identifier_with_other_bytes() -> None:
    c, _ = peer_after_start()
    c.process(tls_request(8, 0, None, b"\x16"))
    assert_failed(c, "reuses Identifier 8")


def test_identity_as_the_printed_ike_dn_with_an_email_attribute() -> None:
    """The client's EAP identity defaults to its IKE ID as text; for a DN that is dn_text()."""
    from_subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "XX"),
            x509.NameAttribute(NameOID.COMMON_NAME, "carol"),
            x509.NameAttribute(NameOID.EMAIL_ADDRESS, "carol@example.test"),
        ]
    )
    p = pki()
    carol = make_end_entity(p.intermediate, subject=from_subject, **valid_now())
    identity = str(Identification.from_dn(carol.cert.subject.public_bytes()))
    assert identity == "C=XX, CN=carol, E=carol@example.test"
    s, c = server(), make_peer(identity=identity, cert=carol.der, key=carol.key)
    run(s, c)
    assert s.outcome is EapOutcome.SUCCESS, s.reason
