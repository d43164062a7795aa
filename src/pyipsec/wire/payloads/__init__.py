"""One module per IKEv2 payload. Their codecs register when ``pyipsec.wire.message`` is imported."""
