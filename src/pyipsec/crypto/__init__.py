"""Cryptographic transforms on `cryptography`, looked up by IANA transform ID."""
