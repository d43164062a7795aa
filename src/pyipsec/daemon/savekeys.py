"""Wireshark key export (``[settings] save_keys = "DIR"``): the keys of every IKE and ESP SA.

Theory of operation
-------------------
Wireshark decrypts IKEv2 and ESP when it is given the keys in two of its user tables (UAT
files in its profile directory), as strongSwan's ``save-keys`` plugin writes them:

- ``ikev2_decryption_table``, one line per IKE SA: Initiator's SPI, Responder's SPI, SK_ei,
  SK_er, encryption algorithm, SK_ai, SK_ar, integrity algorithm. SPIs and keys are bare hex,
  the algorithms quoted with the names of Wireshark's ISAKMP dissector (``"AES-CBC-256
  [RFC3602]"``, ``"HMAC_SHA2_256_128 [RFC4868]"``, ``"NONE [RFC4306]"`` for an AEAD's
  integrity). An AEAD's SK_e ends with its salt, which is how Wireshark wants it.
- ``esp_sa``, one line per ESP SA (two per Child SA): protocol (``"IPv4"``/``"IPv6"``),
  source and destination of the outer IP header, ``"0x"`` SPI, encryption algorithm,
  ``"0x"`` key (with the salt or nonce of AES-GCM and AES-CTR), authentication algorithm,
  ``"0x"`` key, with the names of Wireshark's ESP dissector (``"AES-GCM with 16 octet ICV
  [RFC4106]"`` with ``"NULL"`` authentication, ``"HMAC-SHA-256-128 [RFC4868]"``).

The names are those Wireshark 4.0 accepts (its table loader refuses unknown names and SK_*
of the wrong length; ``tests/unit/daemon/test_savekeys.py`` loads what we write into tshark).
Transforms Wireshark cannot decrypt get no line, and one warning naming the algorithm: for
ESP ChaCha20-Poly1305, AES-CCM and AES-GMAC, for IKE ChaCha20-Poly1305. Integrity
algorithms it does not know (AES-XCBC-96, AES-CMAC-96) are written as "any 96 bits, not
checked": Wireshark then decrypts without verifying the ICV (for IKE that name takes no key).

The engine hands the IKE keys out only when asked (``EngineConfig.export_ike_keys``, set
when ``save_keys`` is): :class:`~pyipsec.ike.events.IkeKeysDerived`, once IKE_SA_INIT has
keyed an SA (so even a failed IKE_AUTH can be read) and for each IKE SA made by a rekey. Child
SA keys travel in every ``ChildSaInstalled`` anyway (first, rekeyed, reauthenticated). The
runtime passes each event to :meth:`KeyLog.feed`; lines are appended (Wireshark reads the
whole file), each write opening the file afresh, so a file moved away is started again.

Files are created mode 0600, the directory, if missing, 0700. Writing keys defeats the
encryption for whoever reads them, so the daemon says so in a WARNING line when it starts;
keys themselves never reach the log.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from pyipsec.childsa import ChildSaSpec
from pyipsec.errors import ConfigError
from pyipsec.iana.transforms import EncrId, IntegId
from pyipsec.ike.events import ChildSaInstalled, Event, IkeKeysDerived

__all__ = ["ESP_FILE", "IKE_FILE", "KeyLog", "esp_lines", "ike_line"]

_log = logging.getLogger("pyipsec.daemon.savekeys")

IKE_FILE = "ikev2_decryption_table"
ESP_FILE = "esp_sa"

_AEAD_ICV = {
    EncrId.ENCR_AES_GCM_8: 8,
    EncrId.ENCR_AES_GCM_12: 12,
    EncrId.ENCR_AES_GCM_16: 16,
    EncrId.ENCR_AES_CCM_8: 8,
    EncrId.ENCR_AES_CCM_12: 12,
    EncrId.ENCR_AES_CCM_16: 16,
}

# Wireshark's ISAKMP (IKEv2) dissector: integrity names
_IKE_INTEG = {
    IntegId.NONE: "NONE [RFC4306]",
    IntegId.AUTH_HMAC_MD5_96: "HMAC_MD5_96 [RFC2403]",
    IntegId.AUTH_HMAC_SHA1_96: "HMAC_SHA1_96 [RFC2404]",
    IntegId.AUTH_HMAC_MD5_128: "HMAC_MD5_128 [RFC4595]",
    IntegId.AUTH_HMAC_SHA1_160: "HMAC_SHA1_160 [RFC4595]",
    IntegId.AUTH_HMAC_SHA2_256_128: "HMAC_SHA2_256_128 [RFC4868]",
    IntegId.AUTH_HMAC_SHA2_384_192: "HMAC_SHA2_384_192 [RFC4868]",
    IntegId.AUTH_HMAC_SHA2_512_256: "HMAC_SHA2_512_256 [RFC4868]",
}
_IKE_ANY_96 = "ANY 96-bits of Authentication [No Checking]"  # takes no key

# Wireshark's ESP dissector
_ESP_INTEG = {
    IntegId.NONE: "NULL",
    IntegId.AUTH_HMAC_MD5_96: "HMAC-MD5-96 [RFC2403]",
    IntegId.AUTH_HMAC_SHA1_96: "HMAC-SHA-1-96 [RFC2404]",
    IntegId.AUTH_HMAC_SHA2_256_128: "HMAC-SHA-256-128 [RFC4868]",
    IntegId.AUTH_HMAC_SHA2_384_192: "HMAC-SHA-384-192 [RFC4868]",
    IntegId.AUTH_HMAC_SHA2_512_256: "HMAC-SHA-512-256 [RFC4868]",
}
_ESP_ANY_96 = "ANY 96 bit authentication [no checking]"
_ESP_ENCR = {
    EncrId.ENCR_NULL: "NULL",
    EncrId.ENCR_3DES: "TripleDES-CBC [RFC2451]",
    EncrId.ENCR_AES_CBC: "AES-CBC [RFC3602]",
    EncrId.ENCR_AES_CTR: "AES-CTR [RFC3686]",
    EncrId.ENCR_AES_GCM_8: "AES-GCM with 8 octet ICV [RFC4106]",
    EncrId.ENCR_AES_GCM_12: "AES-GCM with 12 octet ICV [RFC4106]",
    EncrId.ENCR_AES_GCM_16: "AES-GCM with 16 octet ICV [RFC4106]",
}
_ANY_96 = frozenset({IntegId.AUTH_AES_XCBC_96, IntegId.AUTH_AES_CMAC_96})


def _ike_encr_name(encr: EncrId, bits: int | None) -> str | None:
    if encr == EncrId.ENCR_NULL:
        return "NULL [RFC2410]"
    if encr == EncrId.ENCR_3DES:
        return "3DES [RFC2451]"
    if bits not in (128, 192, 256):
        return None
    if encr == EncrId.ENCR_AES_CBC:
        return f"AES-CBC-{bits} [RFC3602]"
    if encr == EncrId.ENCR_AES_CTR:
        return f"AES-CTR-{bits} [RFC5930]"
    icv = _AEAD_ICV.get(encr)
    if icv is None:
        return None  # ChaCha20-Poly1305, Camellia, ...: Wireshark 4.0 cannot decrypt them
    mode = "GCM" if encr in (EncrId.ENCR_AES_GCM_8, EncrId.ENCR_AES_GCM_12, EncrId.ENCR_AES_GCM_16) else "CCM"
    return f"AES-{mode}-{bits} with {icv} octet ICV [RFC5282]"


def ike_line(e: IkeKeysDerived) -> str | None:
    """The ``ikev2_decryption_table`` line of an IKE SA, or None if Wireshark cannot decrypt it."""
    if e.proposal.encr is None:
        return None
    encr_id, bits = e.proposal.encr
    encr = _ike_encr_name(encr_id, bits)
    integ_id = e.proposal.integ if e.proposal.integ is not None else IntegId.NONE
    k = e.keys
    sk_ai, sk_ar = k.sk_ai.hex(), k.sk_ar.hex()
    if integ_id in _ANY_96:
        integ: str | None = _IKE_ANY_96
        sk_ai = sk_ar = ""
    else:
        integ = _IKE_INTEG.get(integ_id)
    if encr is None or integ is None:
        return None
    return (
        f'{e.spi_i.hex()},{e.spi_r.hex()},{k.sk_ei.hex()},{k.sk_er.hex()},"{encr}",{sk_ai},{sk_ar},"{integ}"'
    )


def _esp_line(spec: ChildSaSpec, encr: str, integ: str, *, inbound: bool) -> str:
    src, dst = (spec.remote.ip, spec.local.ip) if inbound else (spec.local.ip, spec.remote.ip)
    spi = spec.spi_in if inbound else spec.spi_out
    ekey = spec.encr_key_in if inbound else spec.encr_key_out
    akey = spec.integ_key_in if inbound else spec.integ_key_out
    return (
        f'"IPv{src.version}","{src}","{dst}","0x{spi.hex()}",'
        f'"{encr}","{"0x" + ekey.hex() if ekey else ""}","{integ}","{"0x" + akey.hex() if akey else ""}"'
    )


def esp_lines(spec: ChildSaSpec) -> tuple[str, ...]:
    """The two ``esp_sa`` lines of a Child SA (inbound, outbound); none if Wireshark cannot
    decrypt its transform."""
    encr = _ESP_ENCR.get(spec.encr)
    integ = _ESP_ANY_96 if spec.integ in _ANY_96 else _ESP_INTEG.get(spec.integ)
    if encr is None or integ is None:
        return ()
    return (_esp_line(spec, encr, integ, inbound=True), _esp_line(spec, encr, integ, inbound=False))


class KeyLog:
    """Appends the keys of the SAs the engine reports to ``directory`` (module docstring)."""

    def __init__(self, directory: Path) -> None:
        if directory.exists() and not directory.is_dir():
            raise ConfigError(f"{directory} is not a directory", key="settings.save_keys")
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            message = f"cannot create {directory}: {exc.strerror}"
            raise ConfigError(message, key="settings.save_keys") from None
        self.directory = directory
        self._unsupported: set[str] = set()
        _log.warning(
            "save_keys: writing IKE and ESP keys to %s — anyone who reads them can decrypt the traffic",
            directory,
        )

    def feed(self, e: Event) -> None:
        """Write the keys ``e`` carries, if any."""
        if isinstance(e, IkeKeysDerived):
            line = ike_line(e)
            if line is None:
                encr, integ = e.proposal.encr, e.proposal.integ
                self._skip(f"IKE {encr[0].name if encr else None}/{integ.name if integ else 'NONE'}")
            else:
                self._append(IKE_FILE, (line,))
        elif isinstance(e, ChildSaInstalled):
            lines = esp_lines(e.spec)
            if not lines:
                self._skip(f"ESP {e.spec.encr.name}/{e.spec.integ.name}")
            else:
                self._append(ESP_FILE, lines)

    def _skip(self, what: str) -> None:
        if what not in self._unsupported:
            self._unsupported.add(what)
            _log.warning("save_keys: Wireshark cannot decrypt %s; its keys are not written", what)

    def _append(self, name: str, lines: Iterable[str]) -> None:
        path = self.directory / name
        data = "".join(f"{line}\n" for line in lines).encode()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            try:
                os.fchmod(fd, 0o600)
                os.write(fd, data)
            finally:
                os.close(fd)
        except OSError as exc:
            _log.error("save_keys: cannot write %s: %s", path, exc.strerror)
