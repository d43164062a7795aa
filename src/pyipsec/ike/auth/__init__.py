"""Authenticators: how AUTH payloads are built and verified (PSK, signatures, EAP)."""
