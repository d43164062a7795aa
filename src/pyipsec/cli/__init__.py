"""The ``pyipsec`` command-line interface: :func:`pyipsec.cli.main.main` is the entry point."""

__all__: list[str] = []
