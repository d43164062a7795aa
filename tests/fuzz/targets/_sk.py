"""The sending side of SK/SKF payloads for the fuzz targets: fuzzer bytes become the *whole*
encrypted plaintext (payload chain, padding, Pad Length), sealed with fixed keys the way
RFC 7296 §3.14 / RFC 7383 §2.5 say, so the receiver's real verify → decrypt → unpad → decode
path runs past the ICV. Built from ``pyipsec.crypto`` primitives and ``encode_message_prefix``
(public API), not from ``SkProtector``'s sending code, which could not send malformed padding.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyipsec.crypto.aead import AeadSpec
from pyipsec.crypto.cipher import CipherSpec
from pyipsec.crypto.integ import IntegSpec
from pyipsec.crypto.registry import REGISTRY
from pyipsec.iana.ikev2 import ExchangeType, PayloadType
from pyipsec.iana.transforms import EncrId, IntegId
from pyipsec.ike.protect import SkProtector
from pyipsec.wire.message import Message, encode_message_prefix
from pyipsec.wire.payloads.sk import EncryptedFragment, EncryptedPayload

__all__ = ["SUITES", "Suite", "header"]


@dataclass(frozen=True)
class Suite:
    """One direction's SK transforms and keys (fixed test keys unless given)."""

    encr: CipherSpec | AeadSpec
    integ: IntegSpec | None
    sk_e: bytes = b""
    sk_a: bytes = b""

    def __post_init__(self) -> None:
        if not self.sk_e:
            object.__setattr__(self, "sk_e", bytes(range(1, 1 + self.encr.keymat_len)))
        if not self.sk_a and self.integ is not None:
            object.__setattr__(self, "sk_a", bytes(range(100, 100 + self.integ.key_len)))

    def receiver(self) -> SkProtector:
        return SkProtector(self.encr, self.integ, self.sk_e, self.sk_a)

    @property
    def block(self) -> int:
        return 1 if isinstance(self.encr, AeadSpec) else self.encr.block_len

    def seal(
        self, msg: Message, first: PayloadType, padded: bytes, *, fragment: tuple[int, int] | None = None
    ) -> bytes:
        """``msg`` with an SK payload (or an SKF ``(number, total)``) whose plaintext is ``padded``
        as given (a CBC plaintext is zero-extended to whole blocks)."""
        if self.block > 1 and len(padded) % self.block:
            padded += bytes(self.block - len(padded) % self.block)
        iv = bytes(range(200, 200 + self.encr.iv_len))
        enc: EncryptedPayload | EncryptedFragment = (
            EncryptedPayload(first, b"") if fragment is None else EncryptedFragment(*fragment, first, b"")
        )
        icv_len = self.encr.icv_len if isinstance(self.encr, AeadSpec) else self.integ.icv_len  # type: ignore[union-attr]
        prefix = encode_message_prefix(
            msg.with_payloads((*msg.payloads, enc)), len(iv) + len(padded) + icv_len
        )
        if isinstance(self.encr, AeadSpec):
            return prefix + iv + self.encr.new(self.sk_e).seal(iv, padded, prefix)
        assert self.integ is not None
        signed = prefix + iv + self.encr.new(self.sk_e).encrypt(iv, padded)
        return signed + self.integ.new(self.sk_a).compute(signed)


SUITES = (
    Suite(REGISTRY.encr(EncrId.ENCR_AES_GCM_16, 256), None),
    Suite(REGISTRY.encr(EncrId.ENCR_AES_CBC, 128), REGISTRY.integ(IntegId.AUTH_HMAC_SHA2_256_128)),
    Suite(REGISTRY.encr(EncrId.ENCR_CHACHA20_POLY1305), None),
)


def header(exchange: int, message_id: int = 1, *, response: bool = False) -> Message:
    return Message(
        bytes.fromhex("0102030405060708"),
        bytes.fromhex("1112131415161718"),
        exchange_type=ExchangeType(exchange),
        message_id=message_id,
        is_initiator=not response,
        is_response=response,
    )
