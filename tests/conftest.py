"""Fixtures shared by every test: the two database legs, settings, the cast, and time.

Every test that takes ``engine`` runs twice: on a fresh SQLite file and on the
PostgreSQL server (a private schema per test, migrated with Alembic, dropped
afterwards). When no PostgreSQL answers, that leg is skipped with a message that
says how to point the suite at one; it never fails the run.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session
from typer.testing import CliRunner

from casework import deadlines
from casework.cases import Actor, sync_providers
from casework.config import Settings, load_settings
from casework.db import make_engine, session_scope, upgrade

POSTGRES_URL = os.environ.get(
    "CASEWORK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@lru_cache(maxsize=1)
def postgres_unavailable() -> str | None:
    """Why the PostgreSQL leg cannot run here, or None when it can."""
    if os.environ.get("CASEWORK_TEST_SKIP_POSTGRES"):
        return "CASEWORK_TEST_SKIP_POSTGRES is set"
    try:
        import psycopg

        url = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # any failure to connect means: skip, with the reason
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
    return None


def pytest_report_header(config: pytest.Config) -> str:
    reason = postgres_unavailable()
    if reason is None:
        return f"PostgreSQL leg: ON ({POSTGRES_URL})"
    return (
        f"PostgreSQL leg: SKIPPED - no PostgreSQL at {POSTGRES_URL} ({reason}); "
        "set CASEWORK_TEST_POSTGRES_URL to run it"
    )


def postgres_schema_url(schema: str) -> str:
    separator = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"


@pytest.fixture(scope="session", autouse=True)
def _test_environment() -> Iterator[None]:
    os.environ.setdefault("CASEWORK_ENVIRONMENT", "test")
    for var in ("TWILIO_REGION", "TWILIO_EDGE", "SENDGRID_API_KEY"):
        os.environ.pop(var, None)  # they would redirect the SDKs away from the fakes
    yield


# FastAPI classifies each dependency and endpoint it meets (generator? coroutine?) in
# module-level caches of 4,096 entries each, keyed by the function. The health check and
# FastAPI's own handlers are closures over their app, so the caches kept alive every app
# the suite built, each with its engine and models: 3.7 GB by the end of a full run, every
# full garbage collection walking all of it, and pytest's own collections at exit taking
# minutes. A service builds one app per process; a test suite builds thousands.
_FASTAPI_CLASSIFICATION_CACHES = ("_is_gen_callable_cached", "_is_async_gen_callable_cached",
                                  "_is_coroutine_callable_cached")  # fmt: skip


@pytest.fixture(autouse=True)
def _forget_finished_apps() -> Iterator[None]:
    yield
    from fastapi.dependencies import models

    for name in _FASTAPI_CLASSIFICATION_CACHES:
        cache = getattr(models, name, None)
        if cache is not None and hasattr(cache, "cache_clear"):
            cache.cache_clear()


@pytest.fixture
def settings() -> Iterator[Settings]:
    yield load_settings(environment="test")


def _sqlite_engine(tmp_path: object) -> tuple[Engine, str]:
    url = f"sqlite:///{tmp_path}/casework-test.db"
    return make_engine(url), url


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[tuple[Engine, str]]:
    """(engine, url) of an empty, migrated database on each backend."""
    if request.param == "sqlite":
        engine, url = _sqlite_engine(tmp_path)
        upgrade(engine)
        yield engine, url
        engine.dispose()
        return
    reason = postgres_unavailable()
    if reason is not None:
        pytest.skip(f"PostgreSQL leg skipped: no server at {POSTGRES_URL} ({reason})")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = postgres_schema_url(schema)
    engine = make_engine(url)
    try:
        upgrade(engine)
        yield engine, url
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def engine(database: tuple[Engine, str]) -> Engine:
    return database[0]


@pytest.fixture
def database_url(database: tuple[Engine, str]) -> str:
    return database[1]


@pytest.fixture
def session(engine: Engine, settings: Settings) -> Iterator[Session]:
    with session_scope(engine) as s:
        sync_providers(s, settings)
        yield s


# --- The cast --------------------------------------------------------------------------

ADVISER = Actor(id="user:alice.adviser@ias.example.org", role="adviser", channel="cli")
MANAGER = Actor(id="user:morgan.manager@ias.example.org", role="manager", channel="cli")


@pytest.fixture
def adviser() -> Actor:
    return ADVISER


def at(day: str, time: str = "10:00") -> dt.datetime:
    """A London wall-clock moment as an aware UTC datetime: ``at("2026-11-27", "09:00")``."""
    local = dt.datetime.combine(dt.date.fromisoformat(day), dt.time.fromisoformat(time))
    return local.replace(tzinfo=deadlines.LONDON).astimezone(dt.UTC)


def forget_cached_settings_and_engine() -> None:
    """Drop the process's cached settings and engine (disposing its pool), so a test that
    sets CASEWORK_* variables (the CLI's, the app's) reads them afresh and no connection
    outlives its database."""
    from casework import db
    from casework.config import get_settings

    if get_settings.cache_info().currsize:
        settings = get_settings()
        db._cached_engine(settings.resolved_database_url, settings.sql_echo).dispose()
    get_settings.cache_clear()
    db._cached_engine.cache_clear()


@contextmanager
def cli_on(
    database_url: str, monkeypatch: pytest.MonkeyPatch, actor: str = "alice.adviser"
) -> Iterator[CliRunner]:
    """A CLI runner on this test's database, acting as ``actor`` (the OS user a real
    run would name), with the cached settings and engine dropped before and after."""
    forget_cached_settings_and_engine()
    monkeypatch.setenv("CASEWORK_DATABASE_URL", database_url)
    monkeypatch.setenv("CASEWORK_ENVIRONMENT", "test")
    monkeypatch.setenv("CASEWORK_ACTOR", actor)
    try:
        yield CliRunner()
    finally:
        forget_cached_settings_and_engine()
