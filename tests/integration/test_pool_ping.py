"""A pooled PostgreSQL connection the server closed while it sat idle is replaced at
checkout, never handed to a request that would then fail (casework.db pings only
connections idle for a while, instead of ``pool_pre_ping`` on every checkout)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from casework import db
from tests.conftest import POSTGRES_URL, postgres_unavailable


@pytest.fixture
def pg() -> Iterator[tuple[Engine, Engine]]:
    """(the engine under test, an admin engine to kill its connections with)."""
    reason = postgres_unavailable()
    if reason is not None:
        pytest.skip(f"PostgreSQL leg skipped: no server at {POSTGRES_URL} ({reason})")
    engine = db.make_engine(POSTGRES_URL)
    admin = db.make_engine(POSTGRES_URL)
    yield engine, admin
    engine.dispose()
    admin.dispose()


def _pid_killed_while_idle(engine: Engine, admin: Engine) -> int:
    """Use one pooled connection, return it, then end its server process."""
    with engine.connect() as conn:
        pid = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
    with admin.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar_one()
        conn.commit()
    return pid


def test_connection_killed_after_idling_is_replaced(
    pg: tuple[Engine, Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, admin = pg
    dead = _pid_killed_while_idle(engine, admin)
    # As if the connection had sat in the pool longer than the idle limit.
    monkeypatch.setattr(db, "IDLE_PING_SECONDS", -1.0)
    with engine.connect() as conn:
        pid = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
        marker = uuid.uuid4().hex
        assert conn.execute(text("SELECT :m"), {"m": marker}).scalar_one() == marker
    assert pid != dead


def test_connection_used_moments_ago_is_not_pinged(pg: tuple[Engine, Engine]) -> None:
    """The other half of the rule: no ping (no round trip) for a connection just used,
    so a server-side kill within the idle limit surfaces on first use."""
    engine, admin = pg
    _pid_killed_while_idle(engine, admin)
    with pytest.raises(DBAPIError), engine.connect() as conn:
        conn.execute(text("SELECT 1"))
