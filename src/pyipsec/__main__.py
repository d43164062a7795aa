"""``python -m pyipsec``: the same as the ``pyipsec`` command."""

from pyipsec.cli.main import main

__all__: list[str] = []

if __name__ == "__main__":
    main(prog_name="pyipsec")
