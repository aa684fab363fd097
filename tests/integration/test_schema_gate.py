"""Who migrates the schema: `casework db upgrade` in production, the first command on a
fresh embedded database, and nothing else.

`serve` and `worker` start several at a time in production; none of them may change
the schema. On an old schema they refuse with a message that says to run
`casework db upgrade`, and the database is left as it was. A fresh clone's first
command (SQLite, development) still migrates by itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text
from typer.testing import CliRunner, Result

from casework import db
from casework.cli import app
from casework.config import Settings, load_settings
from casework.db import SchemaNotCurrent, database_revisions, downgrade, ensure_schema
from casework.web import assets
from tests.conftest import forget_cached_settings_and_engine

SECRET = "a-long-random-production-secret-for-the-tests"


def production() -> Settings:
    return load_settings(
        environment="production", secret_key=SECRET, public_url="https://casework.example.org"
    )


@pytest.fixture
def head(engine: Engine) -> set[str]:
    return database_revisions(engine)


@pytest.fixture
def old(engine: Engine, head: set[str]) -> set[str]:
    """The database one migration behind this code."""
    downgrade(engine, "-1")
    before = database_revisions(engine)
    assert before and before != head
    return before


def test_production_never_migrates_on_start(engine: Engine, old: set[str]) -> None:
    with pytest.raises(SchemaNotCurrent, match=r"run `casework db upgrade` first"):
        ensure_schema(engine, production())
    assert database_revisions(engine) == old


def test_development_migrates_sqlite_but_never_postgresql(
    engine: Engine, old: set[str], head: set[str], settings: Settings
) -> None:
    if engine.dialect.name == "sqlite":
        assert ensure_schema(engine, settings) is True
        assert database_revisions(engine) == head
        assert ensure_schema(engine, settings) is False
    else:
        with pytest.raises(SchemaNotCurrent, match="casework db upgrade"):
            ensure_schema(engine, settings)
        assert database_revisions(engine) == old


def test_a_current_schema_starts_in_production(engine: Engine, head: set[str]) -> None:
    assert ensure_schema(engine, production()) is False


def test_an_empty_database_in_production_says_to_run_db_upgrade(engine: Engine) -> None:
    downgrade(engine, "base")
    with pytest.raises(SchemaNotCurrent, match=r"no casework tables yet: run `casework db"):
        ensure_schema(engine, production())
    assert database_revisions(engine) == set()


def test_a_database_newer_than_the_code_is_not_touched(engine: Engine, settings: Settings) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    for each in (settings, production()):
        with pytest.raises(SchemaNotCurrent, match="newer version of casework"):
            ensure_schema(engine, each)
    assert database_revisions(engine) == {"9999"}


# --- Through the CLI --------------------------------------------------------------------


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """What serve and worker would have started (the server and the scheduler loop)."""
    from casework import scheduler

    forget_cached_settings_and_engine()
    monkeypatch.setattr(assets, "ensure_assets", lambda quiet=False: None)
    monkeypatch.setattr("casework.logs.configure", lambda *a, **k: None)
    record: list[str] = []
    monkeypatch.setattr("casework.cli.ops.run_server", lambda *a, **k: record.append("serve"))
    monkeypatch.setattr(scheduler, "run_worker", lambda *a, **k: record.append("worker"))
    yield record
    forget_cached_settings_and_engine()


def _casework(*args: str) -> Result:
    forget_cached_settings_and_engine()
    return CliRunner().invoke(app, list(args))


def test_serve_and_worker_refuse_an_old_schema_in_production_until_db_upgrade(
    started: list[str],
    database_url: str,
    engine: Engine,
    old: set[str],
    head: set[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CASEWORK_DATABASE_URL", database_url)
    monkeypatch.setenv("CASEWORK_ENVIRONMENT", "production")
    monkeypatch.setenv("CASEWORK_SECRET_KEY", SECRET)
    monkeypatch.setenv("CASEWORK_PUBLIC_URL", "https://casework.example.org")
    for command in ("serve", "worker"):
        refused = _casework(command)
        assert refused.exit_code == 5, (refused.output, refused.exception)
        assert refused.stderr.startswith("error: the database schema is out of date")
        assert "run `casework db upgrade` first" in refused.stderr
    assert started == []
    assert database_revisions(engine) == old

    upgraded = _casework("db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.output
    assert database_revisions(engine) == head
    for command in ("serve", "worker"):
        assert _casework(command).exit_code == 0
    assert started == ["serve", "worker"]


def test_the_readme_first_command_serves_a_fresh_clone(
    started: list[str], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`casework serve` on a brand-new embedded database migrates it and starts."""
    monkeypatch.setenv("CASEWORK_DATABASE_URL", f"sqlite:///{tmp_path}/fresh.db")
    monkeypatch.setenv("CASEWORK_ENVIRONMENT", "development")
    monkeypatch.delenv("CASEWORK_PUBLIC_URL", raising=False)
    result = _casework("serve")
    assert result.exit_code == 0, (result.output, result.exception)
    assert started == ["serve"]
    engine = db.make_engine(f"sqlite:///{tmp_path}/fresh.db")
    try:
        assert db.schema_is_current(engine)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM providers")).scalar_one() > 0
    finally:
        engine.dispose()
