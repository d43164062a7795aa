"""The daemon: wires the engine, the sockets, the control server and the data plane."""
