"""``python -m pyipsec.dataplane``: the data-plane process (started by DataplaneHandle.spawn)."""

from pyipsec.dataplane.process import main

__all__: list[str] = []

if __name__ == "__main__":
    raise SystemExit(main())
