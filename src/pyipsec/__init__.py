"""pyipsec: an IKEv2/IPsec VPN, server and client, with a userspace ESP data plane."""

__all__ = ["__version__"]

__version__ = "0.1.0"
