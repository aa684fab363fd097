"""The audit trail is sealed, row by row, on SQLite and PostgreSQL; tampering is found.

Every ``case_events`` row carries the SHA-256 of itself and of the row before it on
the same case. These tests write a case's history through the use cases (changes
and views), check that it verifies, then alter and remove rows with plain SQL, as
someone with database access would, and check that ``audit verify`` names the
first row that no longer matches, in words.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session
from typer.testing import CliRunner, Result

from casework import audit, cases
from casework.cases.redaction import redact_audit_rows
from casework.cli import app
from casework.config import Settings
from casework.models import Case, CaseEvent
from tests.conftest import ADVISER, MANAGER, at, forget_cached_settings_and_engine
from tests.factories import advance, create_case


def _history(session: Session, settings: Settings) -> tuple[Case, Case]:
    first = create_case(session, settings, name="Chain Family One")
    advance(session, settings, first, "advise", now=at("2026-11-10"))
    cases.record_view(session, first, MANAGER, at("2026-11-10", "11:00"))
    advance(session, settings, first, "decline", now=at("2026-11-11"))
    second = create_case(session, settings, name="Chain Family Two")
    cases.record_view(session, second, ADVISER, at("2026-11-12"))
    return first, second


def _verify(engine: Engine) -> audit.Verification:
    with engine.connect() as connection:
        return audit.find_breaks(connection)


@contextmanager
def behind_the_apps_back(engine: Engine) -> Iterator[Connection]:
    """A connection that edits audit rows as someone with database access would.

    On PostgreSQL the append-only trigger refuses that, so the superuser the tests run
    as switches it off for the edit and on again after, as an attacker with the owner's
    rights could; SQLite has no such guard.
    """
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE case_events DISABLE TRIGGER USER"))
        yield conn
        if conn.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE case_events ENABLE TRIGGER USER"))


def _event_ids(engine: Engine, case: Case) -> list[int]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text("SELECT id FROM case_events WHERE case_id = :c ORDER BY id"), {"c": case.id}
            ).scalars()
        )


def test_every_row_is_sealed_and_the_trail_verifies(
    engine: Engine, session: Session, settings: Settings
) -> None:
    _first, _second = _history(session, settings)
    result = _verify(engine)
    assert result.breaks == []
    assert result.cases == 2
    assert result.rows == result.sealed == 6
    with engine.connect() as conn:
        hashes = list(conn.execute(text("SELECT hash FROM case_events")).scalars())
    assert all(h and len(h) == 64 for h in hashes)
    assert len(set(hashes)) == len(hashes)


def test_a_row_changed_behind_the_apps_back_is_named(
    engine: Engine, session: Session, settings: Settings
) -> None:
    first, _second = _history(session, settings)
    advise_id = _event_ids(engine, first)[1]
    with behind_the_apps_back(engine) as conn:
        conn.execute(
            text("UPDATE case_events SET actor = 'user:someone.else@example.org' WHERE id = :i"),
            {"i": advise_id},
        )
    result = _verify(engine)
    assert [(b.reference, b.event) for b in result.breaks] == [(first.reference, "advise")]
    assert result.breaks[0].at == at("2026-11-10")


def test_a_removed_row_breaks_the_chain_at_the_next_one(
    engine: Engine, session: Session, settings: Settings
) -> None:
    first, _second = _history(session, settings)
    view_id = _event_ids(engine, first)[2]
    with behind_the_apps_back(engine) as conn:
        conn.execute(text("DELETE FROM case_events WHERE id = :i"), {"i": view_id})
    result = _verify(engine)
    assert [(b.reference, b.event) for b in result.breaks] == [(first.reference, "decline")]


def test_a_removed_seal_is_reported(engine: Engine, session: Session, settings: Settings) -> None:
    _first, second = _history(session, settings)
    last_of_second = _event_ids(engine, second)[-1]
    with behind_the_apps_back(engine) as conn:
        conn.execute(
            text("UPDATE case_events SET hash = NULL WHERE id = :i"), {"i": last_of_second}
        )
    result = _verify(engine)
    assert [(b.reference, b.event) for b in result.breaks] == [(second.reference, "viewed")]
    assert "seal" in result.breaks[0].why


def test_the_chain_starts_at_the_first_sealed_row(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """Rows written before the migration have no seal; the chain begins after them."""
    case = create_case(session, settings, name="Older Family")
    with behind_the_apps_back(engine) as conn:
        conn.execute(text("UPDATE case_events SET hash = NULL WHERE case_id = :c"), {"c": case.id})
    advance(session, settings, case, "advise", now=at("2026-11-10"))
    cases.record_view(session, case, MANAGER, at("2026-11-10", "12:00"))
    result = _verify(engine)
    assert result.breaks == []
    assert (result.rows, result.sealed) == (3, 2)


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


def test_audit_verify_says_in_words_which_row_was_altered(
    cli: CliRunner, engine: Engine, session: Session, settings: Settings
) -> None:
    first, _second = _history(session, settings)
    assert (
        "the audit trail verifies: 6 sealed rows across 2 cases"
        in _run(cli, "audit", "verify").stdout
    )
    decline_id = _event_ids(engine, first)[-1]
    with behind_the_apps_back(engine) as conn:
        conn.execute(
            text("UPDATE case_events SET note = 'rewritten' WHERE id = :i"), {"i": decline_id}
        )
    out = _run(cli, "audit", "verify", expect=1).stdout
    assert first.reference in out
    assert cases.event_label("decline") in out
    assert "Wednesday 11 November 2026 at 10:00am" in out
    assert "decline" not in out.replace(cases.event_label("decline"), "")
    data = json.loads(_run(cli, "audit", "verify", "--json", expect=1).stdout)
    assert [b["reference"] for b in data["breaks"]] == [first.reference]


def test_the_sweeps_own_rows_keep_the_chain_whole(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """The sweep writes 'deadline missed' rows in bulk; they are sealed like the rest, and a
    step recorded after them chains onto them."""
    from casework.reminders import sweep

    case = create_case(session, settings, decision_date=dt.date(2026, 9, 1), now=at("2026-10-20"))
    advance(session, settings, case, "advise", now=at("2026-10-21"))
    sweep(engine, at("2026-11-02", "09:00"), settings)
    advance(session, settings, case, "decline", now=at("2026-11-03"), declined_on="2026-10-30")
    result = _verify(engine)
    assert result.breaks == []
    with engine.connect() as connection:
        missed = connection.execute(
            text("SELECT hash FROM case_events WHERE event = 'deadline_missed'")
        ).all()
    assert missed and all(row.hash for row in missed)


# --- The database refuses edits; redaction is recorded, not rewritten -------------------


def _refused(engine: Engine, sql: str, params: dict[str, object]) -> str:
    with pytest.raises(DBAPIError) as refused, engine.begin() as conn:
        conn.execute(text(sql), params)
    return str(refused.value.orig)


def test_postgresql_refuses_to_change_or_delete_an_audit_row(
    engine: Engine, session: Session, settings: Settings
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("the append-only trigger is PostgreSQL's; SQLite relies on audit verify")
    first, _second = _history(session, settings)
    advise_id = _event_ids(engine, first)[1]
    assert "cannot be changed" in _refused(
        engine, "UPDATE case_events SET event = 'withdraw' WHERE id = :i", {"i": advise_id}
    )
    assert "cannot be deleted" in _refused(
        engine, "DELETE FROM case_events WHERE id = :i", {"i": advise_id}
    )
    assert "cannot be deleted" in _refused(engine, "TRUNCATE case_events CASCADE", {})
    # Blanking personal details is refused too, unless a redaction row lists the row.
    assert "recorded redaction" in _refused(
        engine,
        "UPDATE case_events SET note = :m, actor = :a, data = '{}', personal_salt = NULL"
        " WHERE id = :i",
        {"i": advise_id, "m": audit.REDACTED, "a": audit.REDACTED},
    )
    assert "never rewritten" in _refused(
        engine, "UPDATE case_events SET note = 'rewritten' WHERE id = :i", {"i": advise_id}
    )
    assert _verify(engine).breaks == []


def _redact(session: Session, case: Case) -> list[int]:
    """Redact every row of ``case`` written so far, as retention and erasure do."""
    rows = cases.case_events(session, case, include_views=True)
    redact_audit_rows(
        session, case, rows, actor=MANAGER, now=at("2026-11-20"), why="test redaction"
    )
    session.commit()
    return [r.id for r in rows if r.id is not None]


def test_a_redacted_trail_still_verifies_and_holds_no_personal_details(
    engine: Engine, session: Session, settings: Settings
) -> None:
    first, second = _history(session, settings)
    redacted = _redact(session, first)
    cases.record_view(session, first, ADVISER, at("2026-11-21"))
    result = _verify(engine)
    assert result.breaks == []
    assert result.rows == result.sealed == 6 + 2
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT id, actor, note, event, at FROM case_events WHERE case_id = :c ORDER BY id"
            ),
            {"c": first.id},
        ).all()
    blanked = [r for r in rows if r.id in redacted]
    assert [r.event for r in blanked] == ["open", "advise", "viewed", "decline"]
    assert all(r.actor == r.note == audit.REDACTED for r in blanked)
    assert rows[-2].event == "redacted" and rows[-1].event == "viewed"
    assert "morgan.manager" not in " ".join(r.actor for r in blanked)
    # A second redaction of the same rows adds nothing.
    assert (
        redact_audit_rows(
            session,
            first,
            cases.case_events(session, first, include_views=True)[:4],
            actor=MANAGER,
            now=at("2026-11-22"),
            why="again",
        )
        is None
    )
    assert _verify(engine).breaks == []
    assert second.reference not in {b.reference for b in _verify(engine).breaks}


def test_a_redacted_row_altered_behind_the_apps_back_is_found(
    engine: Engine, session: Session, settings: Settings
) -> None:
    first, _second = _history(session, settings)
    ids = _redact(session, first)
    with behind_the_apps_back(engine) as conn:
        conn.execute(
            text("UPDATE case_events SET note = 'Chain Family One rang again' WHERE id = :i"),
            {"i": ids[1]},
        )
    result = _verify(engine)
    assert [(b.reference, b.event) for b in result.breaks] == [(first.reference, "advise")]
    assert "put back" in result.breaks[0].why
    with behind_the_apps_back(engine) as conn:
        conn.execute(
            text("UPDATE case_events SET note = :m, event = 'withdraw' WHERE id = :i"),
            {"i": ids[1], "m": audit.REDACTED},
        )
    result = _verify(engine)
    assert [(b.reference, b.event) for b in result.breaks] == [(first.reference, "withdraw")]
    assert "does not match its seal" in result.breaks[0].why


def test_a_row_cannot_be_declared_redacted_by_editing_the_redaction_row(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """The list of redacted rows is sealed: widening it to hide an edit breaks the chain."""
    first, second = _history(session, settings)
    _redact(session, first)
    target = _event_ids(engine, second)[0]
    with behind_the_apps_back(engine) as conn:
        rows = conn.execute(text("SELECT id, data FROM case_events WHERE event = 'redacted'")).one()
        data = rows.data if isinstance(rows.data, dict) else json.loads(rows.data)
        data["rows"].append(target)
        conn.execute(
            text("UPDATE case_events SET data = :d WHERE id = :i"),
            {"d": json.dumps(data), "i": rows.id},
        )
    result = _verify(engine)
    assert (first.reference, "redacted") in {(b.reference, b.event) for b in result.breaks}


def test_the_operations_log_is_sealed_and_guarded(
    engine: Engine, session: Session, settings: Settings
) -> None:
    from casework.cases import retention

    retention.plan(session, at=at("2026-11-20"), actor=MANAGER, settings=settings)
    retention.run(session, at=at("2026-11-21"), actor=MANAGER, settings=settings)
    assert _verify(engine).breaks == []
    if engine.dialect.name == "postgresql":
        assert "append-only" in _refused(engine, "DELETE FROM ops_events", {})
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE ops_events DISABLE TRIGGER USER"))
        conn.execute(
            text("UPDATE ops_events SET actor = 'cli:someone' WHERE action = 'retention_plan'")
        )
        if conn.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE ops_events ENABLE TRIGGER USER"))
    found = _verify(engine).breaks
    assert [(b.reference, b.event) for b in found] == [(audit.OPS_LOG, "retention_plan")]


def test_the_apps_own_role_can_append_and_redact_but_never_rewrite_history(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """The grants a separate app role gets (README: Protecting the audit trail)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("roles and grants are PostgreSQL's")
    import uuid

    from sqlalchemy.exc import ProgrammingError

    first, _second = _history(session, settings)
    advise_id = _event_ids(engine, first)[1]
    role = f"casework_app_{uuid.uuid4().hex[:10]}"
    with engine.begin() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        conn.execute(text(f'CREATE ROLE "{role}" NOLOGIN'))
        conn.execute(text(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"'))
        conn.execute(
            text(
                f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{schema}"'
                f' TO "{role}"'
            )
        )
        conn.execute(text(f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA "{schema}" TO "{role}"'))
        for statement in audit.app_role_grants(role):
            conn.execute(text(statement))
    try:
        for sql in (
            "UPDATE case_events SET event = 'withdraw' WHERE id = :i",
            "DELETE FROM case_events WHERE id = :i",
            "DELETE FROM ops_events WHERE id = :i",
        ):
            with pytest.raises(ProgrammingError) as refused, engine.begin() as conn:
                conn.execute(text(f'SET LOCAL ROLE "{role}"'))
                conn.execute(text(sql), {"i": advise_id})
            assert "permission denied" in str(refused.value.orig)
        # As the app role: a new audit row and a redaction both go through.
        with engine.connect() as conn:
            conn.execute(text(f'SET ROLE "{role}"'))
            conn.commit()
            with Session(bind=conn) as as_app:
                assert as_app.execute(text("SELECT current_user")).scalar_one() == role
                case = cases.get_case(as_app, first.reference)
                cases.record_view(as_app, case, ADVISER, at("2026-11-13"))
                redact_audit_rows(
                    as_app,
                    case,
                    cases.case_events(as_app, case)[:2],
                    actor=MANAGER,
                    now=at("2026-11-14"),
                    why="erasure",
                )
                as_app.commit()
            conn.execute(text("RESET ROLE"))
            conn.commit()
        with engine.connect() as conn:
            blanked = conn.execute(
                text("SELECT count(*) FROM case_events WHERE actor = :m"), {"m": audit.REDACTED}
            ).scalar_one()
            redactions = conn.execute(
                text("SELECT count(*) FROM case_events WHERE event = 'redacted'")
            ).scalar_one()
        assert (blanked, redactions) == (2, 1)
        assert _verify(engine).breaks == []
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))


def _fork_after_the_last_row(engine: Engine, case: Case, *, note: str) -> None:
    """Append a row sealed after the SAME row as the case's last one, as two writers at
    the same moment did on PostgreSQL before migration 0017 (the second read a stale
    chain end); inserted on Core, so nothing seals it again."""
    with engine.connect() as conn:
        ends = list(
            conn.execute(
                text("SELECT hash FROM case_events WHERE case_id = :c ORDER BY id DESC LIMIT 2"),
                {"c": case.id},
            ).scalars()
        )
    row = {
        "case_id": case.id,
        "at": at("2026-11-12", "10:00"),
        "actor": MANAGER.id,
        "event": "viewed",
        "from_state": case.state,
        "to_state": None,
        "data": {},
        "channel": "web",
        "note": note,
    }
    audit._seal(row, ends[1] if len(ends) > 1 else "")
    with engine.begin() as conn:
        conn.execute(CaseEvent.__table__.insert(), [row])  # type: ignore[attr-defined]


def test_two_rows_written_at_the_same_moment_are_told_apart_from_tampering(
    cli: CliRunner, engine: Engine, session: Session, settings: Settings
) -> None:
    first, _second = _history(session, settings)
    _fork_after_the_last_row(engine, first, note="")
    result = _verify(engine)
    assert result.breaks == []
    assert [(f.reference, f.event) for f in result.forks] == [(first.reference, "viewed")]
    # The chain goes on from the newer row, as the next writer read it.
    advance(session, settings, cases.get_case(session, first.reference), "issue_certificate",
            now=at("2026-11-13"), certificate_on="2026-11-13")  # fmt: skip
    assert _verify(engine).breaks == []
    out = _run(cli, "audit", "verify").stdout
    assert "the audit trail verifies" in out
    assert "written at the same moment; not a sign of tampering" in out
    assert first.reference in out
    data = json.loads(_run(cli, "audit", "verify", "--json").stdout)
    assert [f["reference"] for f in data["written_at_the_same_moment"]] == [first.reference]


def test_a_row_altered_after_a_fork_is_still_a_break(
    engine: Engine, session: Session, settings: Settings
) -> None:
    first, _second = _history(session, settings)
    _fork_after_the_last_row(engine, first, note="")
    last = _event_ids(engine, first)[-1]
    with behind_the_apps_back(engine) as conn:
        conn.execute(text("UPDATE case_events SET channel = 'cli' WHERE id = :i"), {"i": last})
    result = _verify(engine)
    assert [(b.reference, b.event) for b in result.breaks] == [(first.reference, "viewed")]
    assert result.forks == []
