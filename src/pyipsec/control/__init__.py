"""The control API: JSON lines over a root-only UNIX socket (DESIGN.md §6)."""
