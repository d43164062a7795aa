"""IANA registry values for IKEv2 and IPsec, named as IANA names them."""
