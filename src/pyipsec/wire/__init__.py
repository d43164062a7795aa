"""The IKEv2 wire format: header, payloads and messages (RFC 7296 §3)."""
