"""Errors of the PKI and profile tools: local mistakes, reported to the admin, never sent to a peer."""

from __future__ import annotations

from pyipsec.errors import PyIpsecError

__all__ = ["PkiError", "ProfileError"]


class PkiError(PyIpsecError):
    """A PKI operation that cannot be done as asked: a bad name, a missing CA, a file in the way."""


class ProfileError(PkiError):
    """A client profile that cannot be written as asked (e.g. an option the client lacks)."""
