"""Every seed and every crash input of the fuzz targets, replayed through the targets' ``check``
functions with plain calls (no atheris): a crash the fuzzer once found stays a regression test.

``tests/corpus/<target>/`` is the seed corpus (``python -m tests.fuzz.seeds``);
``tests/corpus/<target>-crash/`` holds the inputs ``scripts/fuzz.py`` found crashing, committed
with their fixes.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from tests.fuzz.targets import TARGETS, Target


def _cases() -> list[tuple[Target, Path]]:
    cases = []
    for target in TARGETS.values():
        for folder in (target.seeds, target.crashes):
            if folder.is_dir():
                cases += [(target, f) for f in sorted(folder.iterdir()) if f.is_file()]
    return cases


CASES = _cases()


def test_every_target_has_seeds() -> None:
    for target in TARGETS.values():
        assert any(t is target for t, _ in CASES), f"no seeds for {target.name}"


@pytest.mark.parametrize(
    ("target", "path"), CASES, ids=[f"{t.name}/{p.parent.name}/{p.name}" for t, p in CASES]
)
def test_replay(target: Target, path: Path) -> None:
    importlib.import_module(target.module).check(path.read_bytes())
