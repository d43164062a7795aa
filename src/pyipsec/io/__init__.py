"""The I/O edge: UDP sockets, TUN devices, netlink configuration."""
