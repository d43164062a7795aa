"""The exception hierarchy (DESIGN.md §7).

Every error that input can cause is a :class:`PyIpsecError`. Protocol errors that a
responder answers with a Notify are :class:`IkeError` subclasses carrying their
``NotifyType``; malformed bytes raise :class:`DecodeError` (which is itself an
``IkeError`` answered with INVALID_SYNTAX unless a subclass says otherwise).
"""

from __future__ import annotations

from typing import ClassVar

from pyipsec.iana.ikev2 import NotifyType

__all__ = [
    "AuthenticationFailed",
    "CertificateError",
    "ChildSaNotFound",
    "ConfigError",
    "DecodeError",
    "EapError",
    "FailedCpRequired",
    "IkeError",
    "IntegrityError",
    "InternalAddressFailure",
    "InvalidKePayload",
    "InvalidKeyExchange",
    "InvalidMajorVersion",
    "InvalidSyntax",
    "NoProposalChosen",
    "PyIpsecError",
    "SinglePairRequired",
    "TemporaryFailure",
    "TsUnacceptable",
    "UnsupportedAlgorithm",
    "UnsupportedCriticalPayload",
    "UsageError",
]


class PyIpsecError(Exception):
    """Base of every error pyipsec raises on purpose."""


class IntegrityError(PyIpsecError):
    """An ICV or AEAD tag did not verify: the packet is dropped and counted."""


class UnsupportedAlgorithm(PyIpsecError):
    """A transform ID (or key length) that pyipsec does not implement."""


class InvalidKeyExchange(PyIpsecError):
    """A peer's key-exchange public value failed validation (RFC 6989)."""


class IkeError(PyIpsecError):
    """A protocol error that maps to an IKEv2 Notify (error type)."""

    notify: ClassVar[NotifyType] = NotifyType.INVALID_SYNTAX

    def notify_data(self) -> bytes:
        """Notification data to send with the Notify (empty unless the RFC defines some)."""
        return b""


class InvalidSyntax(IkeError):
    notify = NotifyType.INVALID_SYNTAX


class DecodeError(InvalidSyntax):
    """Malformed bytes: truncated, overlong or inconsistent. ``offset`` locates the fault."""

    def __init__(self, message: str, *, offset: int = 0) -> None:
        super().__init__(f"{message} (at offset {offset})")
        self.offset = offset


class UnsupportedCriticalPayload(DecodeError):
    """An unknown payload with the critical bit set (RFC 7296 §2.5)."""

    notify = NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD

    def __init__(self, payload_type: int, *, offset: int = 0) -> None:
        super().__init__(f"unsupported critical payload type {payload_type}", offset=offset)
        self.payload_type = payload_type

    def notify_data(self) -> bytes:
        # RFC 7296 §3.10.1: the data is the one-octet payload type.
        return bytes([self.payload_type & 0xFF])


class NoProposalChosen(IkeError):
    notify = NotifyType.NO_PROPOSAL_CHOSEN


class InvalidKePayload(IkeError):
    notify = NotifyType.INVALID_KE_PAYLOAD

    def __init__(self, wanted_group: int, message: str = "") -> None:
        super().__init__(message or f"key exchange method {wanted_group} wanted")
        self.wanted_group = wanted_group

    def notify_data(self) -> bytes:
        return self.wanted_group.to_bytes(2, "big")


class AuthenticationFailed(IkeError):
    notify = NotifyType.AUTHENTICATION_FAILED


class TsUnacceptable(IkeError):
    notify = NotifyType.TS_UNACCEPTABLE


class SinglePairRequired(IkeError):
    notify = NotifyType.SINGLE_PAIR_REQUIRED


class InternalAddressFailure(IkeError):
    notify = NotifyType.INTERNAL_ADDRESS_FAILURE


class FailedCpRequired(IkeError):
    notify = NotifyType.FAILED_CP_REQUIRED


class TemporaryFailure(IkeError):
    notify = NotifyType.TEMPORARY_FAILURE


class ChildSaNotFound(IkeError):
    notify = NotifyType.CHILD_SA_NOT_FOUND


class ConfigError(PyIpsecError):
    """A local configuration mistake, never sent to a peer."""

    def __init__(self, message: str, *, path: str = "", key: str = "") -> None:
        where = ":".join(p for p in (path, key) if p)
        super().__init__(f"{where}: {message}" if where else message)
        self.path = path
        self.key = key


class UsageError(PyIpsecError):
    """A wrong call of the CLI or the control API."""


class InvalidMajorVersion(DecodeError):
    """An IKE header whose major version is not 2 (RFC 7296 §1.5, §2.5, §3.1)."""

    notify = NotifyType.INVALID_MAJOR_VERSION

    def __init__(self, major_version: int, *, offset: int = 0) -> None:
        super().__init__(f"unsupported IKE major version {major_version}", offset=offset)
        self.major_version = major_version


class CertificateError(AuthenticationFailed):
    """A peer certificate that cannot be used: malformed, untrusted, expired, wrong usage."""


class EapError(AuthenticationFailed):
    """An EAP conversation that cannot go on: a malformed or unexpected EAP message, or a misuse
    of an EAP method object (RFC 3748; RFC 7296 §2.16)."""
