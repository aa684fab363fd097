"""PostgreSQL keeps the plans of a pooled connection's statements across requests.

psycopg prepares a statement once a connection has run it five times, but its own
``rollback()`` forgets everything it prepared, and every read-only request ends in a
rollback: nothing was ever prepared and each request planned its statements afresh
(a dashboard's two list statements, 1 ms each). casework.db rolls back a healthy
transaction without the forgetting; a failed one still takes psycopg's own rollback.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from casework import db
from tests.conftest import POSTGRES_URL, postgres_unavailable

MARKER = "SELECT 'casework prepared-statement check' AS what, count(*) FROM pg_class"


@pytest.fixture
def engine() -> Iterator[Engine]:
    reason = postgres_unavailable()
    if reason is not None:
        pytest.skip(f"PostgreSQL leg skipped: no server at {POSTGRES_URL} ({reason})")
    engine = db.make_engine(POSTGRES_URL)
    engine.pool.dispose()
    yield engine
    engine.dispose()


def _prepared(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT statement FROM pg_prepared_statements")).scalars())


def test_a_statement_run_in_read_only_requests_gets_prepared_and_stays_prepared(
    engine: Engine,
) -> None:
    for _ in range(8):  # eight requests, each a transaction ended by a rollback
        with engine.connect() as conn:
            conn.execute(text(MARKER)).all()
    assert MARKER in _prepared(engine)


def test_a_rolled_back_write_is_undone(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("CREATE TEMPORARY TABLE rollback_check (n int)"))
        conn.commit()
        conn.execute(text("INSERT INTO rollback_check VALUES (1)"))
        conn.rollback()
        assert conn.execute(text("SELECT count(*) FROM rollback_check")).scalar_one() == 0
        conn.execute(text("DROP TABLE rollback_check"))
        conn.commit()


def test_a_failed_transaction_is_rolled_back_and_the_connection_reused(engine: Engine) -> None:
    with engine.connect() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with pytest.raises(DBAPIError):
            conn.execute(text("SELECT 1 / 0"))
        conn.rollback()
        assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() == pid
