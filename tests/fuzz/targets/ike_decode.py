"""Z1: raw IKE message (UDP payload without the non-ESP marker) → ``decode_message``.

Contract: only ``DecodeError`` (and its subclasses) escapes; an accepted message re-encodes,
and the re-encoding decodes to an equal message that encodes to the same bytes again.
"""

from __future__ import annotations

from pyipsec.errors import DecodeError
from pyipsec.wire.message import decode_message, encode_message


def check(data: bytes) -> None:
    try:
        msg = decode_message(data)
    except DecodeError:
        return
    wire = encode_message(msg)
    again = decode_message(wire)
    assert again == msg, "decode → encode → decode changed the message"
    assert encode_message(again) == wire, "re-encoding is not stable"
