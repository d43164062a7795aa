"""Configuration: the TOML model and strongSwan-syntax proposal keywords."""
