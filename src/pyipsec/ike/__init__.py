"""The IKEv2 protocol core: sans-I/O state machine, key material, message protection."""
