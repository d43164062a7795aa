"""Shared pytest configuration."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") == "true" else "dev")

CAPTURES = Path(__file__).resolve().parent / "captures"


@pytest.fixture(scope="session")
def captures_dir() -> Path:
    """The five real strongSwan 5.9.8 exchanges with key logs (copied from shared/vectors)."""
    return CAPTURES
