"""Fixtures of the store tests: one private PostgreSQL cluster per test module, a database per test."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from pyipsec.store.postgres import migrate
from tests.support.postgres import PostgresCluster, require_postgres

_names = itertools.count()


@pytest.fixture(scope="module")
def pg_cluster() -> Iterator[PostgresCluster]:
    require_postgres()
    with PostgresCluster() as cluster:
        yield cluster


@pytest.fixture
def pg_dsn(pg_cluster: PostgresCluster) -> str:
    """A fresh database with the pyipsec schema."""
    dsn = pg_cluster.create_database(f"t{next(_names)}")
    migrate(dsn, init=True)
    return dsn


@pytest.fixture
def pg_empty(pg_cluster: PostgresCluster) -> str:
    """A fresh database without any schema."""
    return pg_cluster.create_database(f"e{next(_names)}")
