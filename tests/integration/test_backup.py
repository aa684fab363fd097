"""Backup and restore, on SQLite and PostgreSQL: nothing committed is lost, nothing else appears.

A backup is taken while threads keep opening cases through the use case, then
restored into a fresh database (on PostgreSQL: another database, under another
schema name). Every case committed before the backup began must be there with all
its events and notices; nothing that was not committed may be; the manifest's row
counts and checksum must describe exactly the dump that was restored, and the
restored audit trail must verify.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, make_url, select, text
from typer.testing import CliRunner, Result

from casework import audit, cases
from casework import backup as backups
from casework.cli import app
from casework.config import Settings
from casework.db import database_revisions, make_engine, session_scope
from casework.models import Case, CaseEvent, Notice
from tests.conftest import POSTGRES_URL, forget_cached_settings_and_engine
from tests.factories import create_case

WRITERS = 4


@pytest.fixture
def restore_url(engine: Engine, tmp_path: Path) -> Iterator[str]:
    """The URL of a database nobody has written to, on the same backend as ``engine``."""
    if engine.dialect.name == "sqlite":
        yield f"sqlite:///{tmp_path}/restored/casework.db"
        return
    name = f"r_{uuid.uuid4().hex[:12]}"
    admin = make_engine(POSTGRES_URL).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    base = make_url(POSTGRES_URL).set(database=name)
    url = base.render_as_string(hide_password=False)
    try:
        yield f"{url}?options=-csearch_path%3Dfresh_{uuid.uuid4().hex[:8]}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _ids(engine: Engine) -> tuple[set[str], set[int], set[int]]:
    """(case references, event ids, notice ids) in a database."""
    with engine.connect() as conn:
        refs = set(conn.execute(select(Case.reference)).scalars())  # type: ignore[call-overload]
        events = set(conn.execute(select(CaseEvent.id)).scalars())  # type: ignore[call-overload]
        notices = set(conn.execute(select(Notice.id)).scalars())  # type: ignore[call-overload]
    return refs, events, notices


def _owned(engine: Engine, refs: set[str]) -> tuple[set[int], set[int]]:
    """The ids of the events and notices of the cases ``refs``."""
    with engine.connect() as conn:
        case_ids = {
            r.id
            for r in conn.execute(select(Case.id, Case.reference))  # type: ignore[call-overload]
            if r.reference in refs
        }
        events = {
            r.id
            for r in conn.execute(select(CaseEvent.id, CaseEvent.case_id))  # type: ignore[call-overload]
            if r.case_id in case_ids
        }
        notices = {
            r.id
            for r in conn.execute(select(Notice.id, Notice.case_id))  # type: ignore[call-overload]
            if r.case_id in case_ids
        }
    return events, notices


def test_backup_under_write_load_restores_every_committed_case(
    engine: Engine, settings: Settings, tmp_path: Path, restore_url: str
) -> None:
    with session_scope(engine) as session:
        cases.sync_providers(session, settings)
        for i in range(3):
            create_case(session, settings, name=f"Seeded Family {i}")

    committed: list[str] = []
    errors: list[BaseException] = []
    progress = threading.Condition()
    stop = threading.Event()

    def writer(n: int) -> None:
        i = 0
        with session_scope(engine) as session:
            while not stop.is_set():
                i += 1
                try:
                    case = create_case(session, settings, name=f"Writer {n} Family {i}")
                except cases.Conflict:
                    continue  # another writer won the same row; try again
                except BaseException as exc:
                    errors.append(exc)
                    return
                with progress:
                    committed.append(case.reference)
                    progress.notify_all()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for t in threads:
        t.start()
    try:
        with progress:
            assert progress.wait_for(lambda: len(committed) >= 2 * WRITERS or errors, 60)
            before = set(committed)
        result = backups.backup(engine, tmp_path / "backups")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors
    after = set(committed)
    source_refs, _, _ = _ids(engine)
    assert after <= source_refs

    manifest = result.manifest
    assert result.manifest_path == backups.manifest_path_for(result.dump)
    assert json.loads(result.manifest_path.read_text()) == json.loads(manifest.to_json())
    assert manifest.sha256 == backups.sha256_of(result.dump)
    assert manifest.revision == sorted(database_revisions(engine))

    target = make_engine(restore_url)
    try:
        restored = backups.restore(result.dump, target)
        assert not restored.replaced
        refs, events, notices = _ids(target)
        # Everything committed before the backup began is there; nothing uncommitted is.
        assert before <= refs <= source_refs
        assert {f"Seeded Family {i}" for i in range(3)} <= _names(target)
        # Every restored case has all its events and notices, and nothing else is there.
        source_events, source_notices = _owned(engine, refs)
        assert events == source_events
        assert notices == source_notices
        assert events and notices
        # The manifest counted the dump that was restored, table by table.
        with target.connect() as conn:
            counted = {
                table: conn.execute(text(f'SELECT count(*) FROM "{table}"')).scalar_one()
                for table in manifest.row_counts
            }
        assert counted == manifest.row_counts
        assert manifest.row_counts["cases"] == len(refs)
        assert manifest.row_counts["case_events"] == len(events)
        assert manifest.row_counts["notices"] == len(notices)
        assert sorted(database_revisions(target)) == manifest.revision
        # The restored audit trail is every case's whole chain, and it verifies.
        with target.connect() as conn:
            trail = audit.find_breaks(conn)
        assert trail.breaks == []
        assert trail.sealed == len(events)
    finally:
        target.dispose()


def _names(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(text("SELECT name FROM people")).scalars())


# --- the commands --------------------------------------------------------------------------


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    forget_cached_settings_and_engine()
    monkeypatch.setenv("CASEWORK_DATABASE_URL", database_url)
    monkeypatch.setenv("CASEWORK_ENVIRONMENT", "test")
    yield CliRunner()
    forget_cached_settings_and_engine()


def _run(runner: CliRunner, *args: str, expect: int = 0) -> Result:
    result = runner.invoke(app, list(args))
    assert result.exit_code == expect, (result.stdout, result.stderr, result.exception)
    return result


def test_commands_back_up_restore_and_refuse_to_overwrite(
    cli: CliRunner, engine: Engine, settings: Settings, tmp_path: Path, restore_url: str
) -> None:
    with session_scope(engine) as session:
        cases.sync_providers(session, settings)
        opened = create_case(session, settings, name="Command Line Family")

    out = json.loads(_run(cli, "backup", "--out", str(tmp_path / "b"), "--json").stdout)
    dump = Path(out["dump"])
    assert Path(out["manifest"]) == backups.manifest_path_for(dump)
    assert out["row_counts"]["cases"] == 1

    restored = _run(cli, "restore", str(dump), "--to", restore_url)
    assert "every table holds the rows its manifest counted" in restored.stdout
    target = make_engine(restore_url)
    try:
        assert _ids(target)[0] == {opened.reference}
    finally:
        target.dispose()

    # The target now holds records: a second restore needs --force.
    refused = _run(cli, "restore", str(dump), "--to", restore_url, expect=2)
    assert "not empty" in refused.stderr and "--force" in refused.stderr
    forced = json.loads(
        _run(cli, "restore", str(dump), "--to", restore_url, "--force", "--json").stdout
    )
    assert forced["replaced"] is True

    # Into the configured database, which is not empty either.
    refused = _run(cli, "restore", str(dump), expect=2)
    assert "--force" in refused.stderr

    # A dump that no longer matches its manifest is never restored.
    with dump.open("ab") as handle:
        handle.write(b"\0")
    damaged = _run(cli, "restore", str(dump), "--to", restore_url, "--force", expect=2)
    assert "checksum" in damaged.stderr


def test_a_missing_postgresql_client_names_the_package(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite backs up through the sqlite3 module; no client program is needed")
    monkeypatch.setattr(backups.shutil, "which", lambda _name: None)
    with pytest.raises(backups.BackupError, match="apt-get install postgresql-client"):
        backups.backup(engine, tmp_path)
