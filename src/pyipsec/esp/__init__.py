"""The ESP data plane core (RFC 4303): pure packet processing, SA and policy databases."""
