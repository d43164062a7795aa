"""Z10: TOML text → the config loader (``read_config``, what the daemon and ``pyipsec check``
run).

The text is written as ``pyipsec.toml`` into a private directory that holds a copy of
``examples/pki`` (so the examples' relative file references resolve) and read back.

Contract: only ``ConfigError`` (the loader raises its ``ConfigErrors`` subclass) escapes, and
it names what is wrong.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from pyipsec.config.load import read_config
from pyipsec.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"

_dir = Path(tempfile.mkdtemp(prefix="pyipsec-fuzz-config-"))
atexit.register(shutil.rmtree, _dir, True)
shutil.copytree(EXAMPLES / "pki", _dir / "pki")
_file = _dir / "pyipsec.toml"


def check(data: bytes) -> None:
    _file.write_bytes(data)
    try:
        read_config(_file)
    except ConfigError as exc:
        assert str(exc), "a config error without a message"
