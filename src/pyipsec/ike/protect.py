"""Protection of IKE messages: the Encrypted (SK) and Encrypted Fragment (SKF) payloads.

Theory of operation: one :class:`SkProtector` per direction holds that direction's keys
(SK_ei/SK_ai for what the original initiator sends, SK_er/SK_ar for the other way).

The body of an SK payload is ``IV | ciphertext | ICV`` where the plaintext is the inner
payload chain, then Padding, then a one-octet Pad Length (RFC 7296 §3.14):

- with a classic cipher the plaintext is padded to the cipher's block size, encrypted, and
  the integrity transform's ICV covers the whole message from the IKE header through the
  ciphertext (§3.14: "the ICV is computed over the whole message up to the ICV");
- with an AEAD transform (AES-GCM/CCM, RFC 5282 §5; ChaCha20-Poly1305, RFC 7634 §3-4) the
  IV is the 8-octet explicit nonce part, the associated data is the IKE header through the
  SK payload's generic header, and the AEAD tag is the ICV; no padding is needed, so none
  is sent (strongSwan does the same).

The IV (and the padding content, which may be any value) come from the injected
:class:`~pyipsec.crypto.rand.RandomSource`, in that order. Receiving checks the ICV *first*
(:class:`~pyipsec.errors.IntegrityError`), then decrypts, checks the Pad Length and decodes
the inner chain (:class:`~pyipsec.errors.DecodeError`). It works on ``Message.raw``: the
integrity check covers the octets as received.

An SKF payload (RFC 7383 §2.5) protects one piece of an SK payload's plaintext the same way,
its Fragment Number and Total Fragments being part of the associated / integrity-checked
data. :meth:`SkProtector.protect_fragments` splits and protects; :meth:`unprotect_fragment`
verifies and decrypts one fragment; :func:`reassemble` decodes the joined pieces. Keeping
fragments until all have arrived is ``ike.fragment``'s business.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pyipsec.crypto.aead import AeadKey, AeadSpec
from pyipsec.crypto.cipher import Cipher, CipherSpec
from pyipsec.crypto.integ import Integ, IntegSpec
from pyipsec.crypto.rand import RandomSource
from pyipsec.errors import DecodeError
from pyipsec.iana.ikev2 import PayloadType
from pyipsec.ike.keymat import IkeKeys
from pyipsec.wire.message import (
    Message,
    decode_payload_chain,
    encode_message_prefix,
    encode_payload_chain,
)
from pyipsec.wire.payloads.base import Payload
from pyipsec.wire.payloads.sk import EncryptedFragment, EncryptedPayload

__all__ = ["FragmentPiece", "SkProtector", "reassemble"]

_MAX_FRAGMENTS = 0xFFFF


@dataclass(frozen=True, slots=True)
class FragmentPiece:
    """The verified, decrypted content of one SKF payload (padding removed)."""

    fragment_number: int
    total_fragments: int
    inner_type: PayloadType
    plaintext: bytes = field(repr=False)


class SkProtector:
    """SK/SKF protection for one direction of an IKE SA."""

    __slots__ = ("_aead", "_block_len", "_cipher", "_icv_len", "_integ", "_iv_len")

    def __init__(
        self, encr: CipherSpec | AeadSpec, integ: IntegSpec | None, sk_e: bytes, sk_a: bytes = b""
    ) -> None:
        self._aead: AeadKey | None = None
        self._cipher: Cipher | None = None
        self._integ: Integ | None = None
        if isinstance(encr, AeadSpec):
            if integ is not None:
                raise ValueError("an AEAD transform takes no integrity transform (RFC 5282 §8)")
            self._aead = encr.new(sk_e)
            self._block_len = 1  # RFC 5282 §3: no padding needed
            self._icv_len = encr.icv_len
        else:
            if integ is None:
                raise ValueError(f"{encr.ident.name} needs an integrity transform")
            self._cipher = encr.new(sk_e)
            self._integ = integ.new(sk_a)
            self._block_len = encr.block_len
            self._icv_len = integ.icv_len
        self._iv_len = encr.iv_len

    @classmethod
    def pair(
        cls, encr: CipherSpec | AeadSpec, integ: IntegSpec | None, keys: IkeKeys, *, initiator: bool
    ) -> tuple[SkProtector, SkProtector]:
        """(outbound, inbound) protectors for the original initiator (``initiator=True``) or responder."""
        i_to_r = cls(encr, integ, keys.sk_ei, keys.sk_ai)
        r_to_i = cls(encr, integ, keys.sk_er, keys.sk_ar)
        return (i_to_r, r_to_i) if initiator else (r_to_i, i_to_r)

    @property
    def overhead(self) -> int:
        """IV + ICV + at most a block of padding with its Pad Length: an upper bound per SK/SKF."""
        return self._iv_len + self._icv_len + self._block_len

    # -- sending -----------------------------------------------------------------------------

    def _seal(
        self,
        msg: Message,
        encrypted: EncryptedPayload | EncryptedFragment,
        plaintext: bytes,
        rng: RandomSource,
    ) -> bytes:
        """The whole protected message: ``msg`` with ``encrypted`` (data ignored) appended."""
        iv = rng.random_bytes(self._iv_len)
        pad_len = -(len(plaintext) + 1) % self._block_len
        padded = plaintext + rng.random_bytes(pad_len) + bytes([pad_len])
        data_len = self._iv_len + len(padded) + self._icv_len
        prefix = encode_message_prefix(msg.with_payloads((*msg.payloads, encrypted)), data_len)
        if self._aead is not None:
            return prefix + iv + self._aead.seal(iv, padded, prefix)
        assert self._cipher is not None and self._integ is not None
        signed = prefix + iv + self._cipher.encrypt(iv, padded)
        return signed + self._integ.compute(signed)

    def protect(self, msg: Message, inner: Sequence[Payload], rng: RandomSource) -> bytes:
        """Encode ``msg`` (its header fields and any unprotected payloads) with an SK payload
        carrying ``inner`` (RFC 7296 §3.14); returns the wire bytes."""
        first, plaintext = encode_payload_chain(inner)
        return self._seal(msg, EncryptedPayload(first, b""), plaintext, rng)

    def protect_fragments(
        self, msg: Message, inner: Sequence[Payload], rng: RandomSource, *, max_message_len: int
    ) -> tuple[bytes, ...]:
        """The message split into SKF fragments of at most ``max_message_len`` octets each
        (IKE header through ICV; RFC 7383 §2.5). ``msg`` must carry no unprotected payloads."""
        if msg.payloads:
            raise ValueError("fragmenting a message with unprotected payloads is not supported")
        first, plaintext = encode_payload_chain(inner)
        probe = EncryptedFragment(1, 1, first, b"")
        fixed = len(encode_message_prefix(msg.with_payloads((probe,)), 0)) + self._iv_len + self._icv_len
        room = (max_message_len - fixed) // self._block_len * self._block_len - 1
        if room < 1:
            raise ValueError(f"a fragment of {max_message_len} octets has no room for data")
        chunks = [plaintext[i : i + room] for i in range(0, len(plaintext), room)] or [b""]
        if len(chunks) > _MAX_FRAGMENTS:
            raise ValueError(f"{len(chunks)} fragments exceed the limit of {_MAX_FRAGMENTS}")
        total = len(chunks)
        out = []
        for number, chunk in enumerate(chunks, start=1):
            frag = EncryptedFragment(
                number, total, first if number == 1 else PayloadType.NO_NEXT_PAYLOAD, b""
            )
            out.append(self._seal(msg, frag, chunk, rng))
        return tuple(out)

    # -- receiving -----------------------------------------------------------------------------

    def _open(self, msg: Message, data: bytes) -> tuple[bytes, int]:
        """Verify and decrypt the protected ``data`` ending ``msg.raw``; (plaintext, its offset)."""
        raw = msg.raw
        if not raw or not raw.endswith(data):
            raise ValueError("unprotect needs a message decoded from bytes (Message.raw)")
        start = len(raw) - len(data)
        if len(data) < self._iv_len + self._icv_len + 1:
            raise DecodeError(f"encrypted payload of {len(data)} octets is too short", offset=start)
        iv = data[: self._iv_len]
        if self._aead is not None:
            padded = self._aead.open(iv, data[self._iv_len :], raw[:start])
        else:
            assert self._cipher is not None and self._integ is not None
            self._integ.verify(raw[: len(raw) - self._icv_len], raw[len(raw) - self._icv_len :])
            ciphertext = data[self._iv_len : len(data) - self._icv_len]
            if len(ciphertext) % self._block_len:
                raise DecodeError(
                    f"ciphertext of {len(ciphertext)} octets is not a whole number of blocks",
                    offset=start + self._iv_len,
                )
            padded = self._cipher.decrypt(iv, ciphertext)
        pad_len = padded[-1] if padded else 0
        if not padded or pad_len + 1 > len(padded):
            raise DecodeError(f"pad length {pad_len} exceeds the {len(padded)}-octet plaintext", offset=start)
        return padded[: len(padded) - pad_len - 1], start + self._iv_len

    def unprotect(self, msg: Message) -> tuple[Payload, ...]:
        """Verify, decrypt and decode the SK payload ending ``msg`` (decoded from bytes).

        IntegrityError if the ICV does not verify, DecodeError for malformed plaintext.
        """
        sk = msg.payloads[-1] if msg.payloads else None
        if not isinstance(sk, EncryptedPayload):
            raise ValueError("the message does not end with an SK payload")
        plaintext, at = self._open(msg, sk.data)
        return decode_payload_chain(sk.inner_type, plaintext, base=at)

    def unprotect_fragment(self, msg: Message) -> FragmentPiece:
        """Verify and decrypt the SKF payload ending ``msg`` (RFC 7383 §2.5)."""
        skf = msg.payloads[-1] if msg.payloads else None
        if not isinstance(skf, EncryptedFragment):
            raise ValueError("the message does not end with an SKF payload")
        plaintext, _ = self._open(msg, skf.data)
        return FragmentPiece(skf.fragment_number, skf.total_fragments, skf.inner_type, plaintext)


def reassemble(pieces: Sequence[FragmentPiece]) -> tuple[Payload, ...]:
    """Decode the inner payloads of a complete set of fragments (any order; RFC 7383 §2.6)."""
    if not pieces:
        raise ValueError("no fragments")
    total = pieces[0].total_fragments
    by_number = {p.fragment_number: p for p in pieces}
    if len(by_number) != len(pieces) or any(p.total_fragments != total for p in pieces):
        raise ValueError("duplicate fragments or inconsistent Total Fragments")
    if sorted(by_number) != list(range(1, total + 1)):
        raise ValueError(f"incomplete: have fragments {sorted(by_number)} of {total}")
    plaintext = b"".join(by_number[n].plaintext for n in range(1, total + 1))
    return decode_payload_chain(by_number[1].inner_type, plaintext)
