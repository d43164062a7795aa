"""One module per IKEv2 payload; importing this package registers every payload codec."""
