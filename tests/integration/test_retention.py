"""Retention on SQLite and PostgreSQL: exactly the records past their date are anonymised.

A hand-listed set of records either side of each retention date (run as at noon on
30 November 2026, with the default schedule: cases 6 years after closure, notice
text 1 year, delivery receipts 183 days, looks at a case 2 years, sessions 30 days,
API token use 1 year), a case under a legal hold, and the hand-listed report caseload,
whose figures must not move when every case in it is anonymised.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session, select
from typer.testing import CliRunner, Result

from casework import audit, cases, reports
from casework.cases import legal_hold, retention
from casework.cases.seen_by import who_has_seen
from casework.cli import app
from casework.config import Settings
from casework.models import (
    ApiToken,
    Case,
    DeliveryEvent,
    Notice,
    OpsEvent,
    Person,
    User,
    UserSession,
    WebhookBatch,
)
from casework.reports.queries import BREAKDOWN_BY_KEY
from casework.scheduler import configure
from tests import caseload
from tests.conftest import MANAGER, at, cli_on
from tests.factories import advance, create_case

AT = at("2026-11-30", "12:00")
MARKER = retention.MARKER


def _closed_case(
    session: Session, settings: Settings, name: str, opened: str, withdrawn: str
) -> Case:
    day = dt.date.fromisoformat(opened)
    case = create_case(
        session,
        settings,
        name=name,
        email=f"{name.split()[0].lower()}@example.org",
        decision_date=day - dt.timedelta(days=10),
        now=at(opened),
    )
    return advance(
        session, settings, case, "withdraw", now=at(withdrawn), reason=f"{name} moved away"
    )


def _notices_sent(session: Session, case: Case) -> list[int]:
    """The case's notices as the dispatcher leaves them: sent (their text is kept a year)."""
    rows = list(session.exec(select(Notice).where(Notice.case_id == case.id)).all())
    for n in rows:
        n.status = "sent"
    session.commit()
    return [int(n.id or 0) for n in rows]


def _hand_listed(session: Session, settings: Settings) -> dict[str, Any]:
    """Records either side of their retention date; the ids the plan must list."""
    old = _closed_case(session, settings, "Ada Oldclosed", "2019-05-01", "2020-05-29")
    recent = _closed_case(session, settings, "Ben Recent", "2020-12-01", "2021-01-10")
    held = _closed_case(session, settings, "Cy Held", "2019-05-01", "2019-06-03")
    live = create_case(
        session, settings, name="Di Open", decision_date=dt.date(2026, 9, 25), now=at("2026-10-01")
    )
    cases.record_view(session, recent, MANAGER, at("2021-01-05"))  # past 2 years
    cases.record_view(session, recent, MANAGER, at("2025-06-01"))  # within 2 years
    cases.record_view(session, old, MANAGER, at("2019-06-01"))  # goes with its case
    recent_notices = _notices_sent(session, recent)
    _notices_sent(session, old)
    _notices_sent(session, held)
    _notices_sent(session, live)
    live_notice = session.exec(select(Notice).where(Notice.case_id == live.id)).first()
    assert live_notice is not None and recent_notices
    old_receipt = DeliveryEvent(
        notice_id=recent_notices[0],
        at=at("2026-05-30"),
        source="twilio",
        status="delivered",
        detail="delivered to +447700900123",
    )
    new_receipt = DeliveryEvent(
        notice_id=int(live_notice.id or 0),
        at=at("2026-06-01"),
        source="twilio",
        status="delivered",
        detail="delivered to +447700900999",
    )
    old_batch = WebhookBatch(
        source="twilio",
        received_at=at("2026-05-30"),
        body="To=%2B447700900123",
        applied_at=at("2026-05-30"),
    )
    new_batch = WebhookBatch(
        source="twilio",
        received_at=at("2026-06-01"),
        body="To=%2B447700900999",
        applied_at=at("2026-06-01"),
    )
    user = User(email="sam.staff@ias.example.org", role="adviser", created_at=at("2020-01-01"))
    session.add_all([old_receipt, new_receipt, old_batch, new_batch, user])
    session.flush()
    uid = int(user.id or 0)
    old_session = UserSession(
        token_hash="a" * 64,
        user_id=uid,
        csrf_token="x",
        created_at=at("2026-10-01"),
        last_seen_at=at("2026-10-01"),
        expires_at=at("2026-10-31"),
    )
    new_session = UserSession(
        token_hash="b" * 64,
        user_id=uid,
        csrf_token="x",
        created_at=at("2026-11-01"),
        last_seen_at=at("2026-11-01"),
        expires_at=at("2026-11-02"),
    )
    old_token = ApiToken(
        token_hash="c" * 64,
        user_id=uid,
        created_at=at("2024-01-01"),
        last_used_at=at("2025-11-29"),
    )
    new_token = ApiToken(
        token_hash="d" * 64,
        user_id=uid,
        created_at=at("2024-01-01"),
        last_used_at=at("2025-12-01"),
    )
    session.add_all([old_session, new_session, old_token, new_token])
    session.commit()
    legal_hold.set_legal_hold(
        session,
        held.reference,
        reason="Claim notified by the family's solicitor",
        actor=MANAGER,
        now=at("2026-11-01"),
    )
    views = [
        e.id for e in cases.case_events(session, recent, include_views=True) if e.event == "viewed"
    ]
    return {
        "old": old,
        "recent": recent,
        "held": held,
        "live": live,
        "expected": sorted(
            [
                ("case", int(old.id or 0)),
                *[("notice_body", n) for n in recent_notices],
                ("delivery_receipt", int(old_receipt.id or 0)),
                ("provider_webhook", int(old_batch.id or 0)),
                ("view_audit", int(views[0] or 0)),
                ("session", int(old_session.id or 0)),
                ("api_token_use", int(old_token.id or 0)),
            ]
        ),
    }


def _text(engine: Engine) -> str:
    """Every text value in the tables a case's personal data lives in."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT p.name, p.phone, p.email, c.summary, c.withdrawn_reason, e.note, e.actor,"
                " CAST(e.data AS TEXT) FROM cases c JOIN people p ON p.case_id = c.id"
                " JOIN case_events e ON e.case_id = c.id"
            )
        ).all()
        notices = conn.execute(
            text("SELECT body, subject, to_address, CAST(context AS TEXT) FROM notices")
        ).all()
    return " ".join(str(v) for row in [*rows, *notices] for v in row)


def test_a_run_anonymises_exactly_the_records_past_their_date(
    engine: Engine, session: Session, settings: Settings
) -> None:
    fixture = _hand_listed(session, settings)
    planned = retention.plan(session, at=AT, actor=MANAGER, settings=settings)
    assert sorted((d.record, d.id) for d in planned) == fixture["expected"]
    before = _text(engine)
    assert "Ada Oldclosed" in before and "ada@example.org" in before

    done = retention.run(session, at=AT, actor=MANAGER, settings=settings)
    assert sorted((d.record, d.id) for d in done) == fixture["expected"]

    after = _text(engine)
    assert "Ada Oldclosed" not in after and "ada@example.org" not in after
    # Within their dates, or held: untouched.
    for kept in ("Ben Recent", "ben@example.org", "Cy Held", "cy@example.org", "Di Open"):
        assert kept in after, kept
    session.expire_all()
    old: Case = session.get(Case, fixture["old"].id)  # type: ignore[assignment]
    assert old.anonymised_at == AT and old.state == "withdrawn"
    assert old.withdrawn_reason == MARKER
    person = session.exec(select(Person).where(Person.case_id == old.id)).one()
    assert (person.name, person.phone, person.email) == (MARKER, "", "")
    # Notice text of the recent case is gone, its delivery facts are kept.
    for notice in session.exec(select(Notice).where(Notice.case_id == fixture["recent"].id)).all():
        assert (notice.body, notice.subject, notice.status) == (MARKER, MARKER, "sent")
        assert notice.to_address  # the address goes with the case, not the text
    receipts = {r.detail for r in session.exec(select(DeliveryEvent)).all()}
    assert receipts == {MARKER, "delivered to +447700900999"}
    assert {b.body for b in session.exec(select(WebhookBatch)).all()} == {
        MARKER,
        "To=%2B447700900999",
    }
    assert [s.token_hash[0] for s in session.exec(select(UserSession)).all()] == ["b"]
    tokens = {t.token_hash[0]: t.last_used_at for t in session.exec(select(ApiToken)).all()}
    assert tokens == {"c": None, "d": at("2025-12-01")}
    # The older look at the recent case no longer names who looked; the newer one does.
    looks = who_has_seen(session, fixture["recent"].reference, actor=MANAGER).looks
    assert [(look.who, look.role) for look in looks] == [
        ("morgan.manager@ias.example.org", "No longer on the staff list"),
        ("Someone at the service", "Name removed under the retention schedule"),
    ]

    # The audit trail still verifies; a second run finds nothing; both runs were logged.
    with engine.connect() as conn:
        assert audit.find_breaks(conn).breaks == []
    assert retention.run(session, at=AT, actor=MANAGER, settings=settings) == []
    logged = session.exec(select(OpsEvent).order_by(OpsEvent.id)).all()
    assert [(o.action, o.data["case"]) for o in logged] == [
        ("retention_plan", 1),
        ("retention_run", 1),
        ("retention_run", 0),
    ]


def test_a_legal_hold_stops_retention_until_it_is_lifted(
    engine: Engine, session: Session, settings: Settings
) -> None:
    fixture = _hand_listed(session, settings)
    held = fixture["held"].reference
    planned = {
        (d.record, d.reference)
        for d in retention.plan(session, at=AT, actor=MANAGER, settings=settings)
    }
    assert not any(ref == held for _record, ref in planned)
    legal_hold.clear_legal_hold(
        session, held, reason="The claim was settled", actor=MANAGER, now=at("2026-11-20")
    )
    planned = {
        (d.record, d.reference)
        for d in retention.plan(session, at=AT, actor=MANAGER, settings=settings)
    }
    assert ("case", held) in planned
    trail = [e.event for e in cases.case_events(session, cases.get_case(session, held))]
    assert trail[-2:] == ["legal_hold_set", "legal_hold_cleared"]
    with pytest.raises(cases.NotPermitted):
        legal_hold.set_legal_hold(
            session, held, reason="x", actor=cases.Actor(id="user:a", role="adviser"), now=AT
        )
    with pytest.raises(cases.ValidationFailed):
        legal_hold.set_legal_hold(session, held, reason="  ", actor=MANAGER, now=AT)


def test_only_a_manager_plans_or_runs_retention(session: Session, settings: Settings) -> None:
    adviser = cases.Actor(id="user:alice.adviser@ias.example.org", role="adviser")
    for step in (retention.plan, retention.run):
        with pytest.raises(cases.NotPermitted):
            step(session, at=AT, actor=adviser, settings=settings)


def _figures(session: Session) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for period in (reports.Period.year(2025), reports.Period.year(2026)):
        key = period.start.year
        out[f"timeliness {key}"] = [
            r.as_dict() for r in reports.timeliness(session, period, as_of=caseload.AS_OF)
        ]
        out[f"sen2 {key}"] = reports.sen2(session, period).as_dict()
        flow = reports.flow(session, period, as_of=caseload.AS_OF)
        for name, counts in flow.counts.items():
            free = BREAKDOWN_BY_KEY[name].free_text
            # Reasons typed by people are personal text: their words go, their count stays.
            out[f"flow {key} {name}"] = sum(counts.values()) if free else counts
        out[f"flow stats {key}"] = [s.__dict__ for s in flow.stats]
    return out


def test_the_reports_add_up_the_same_after_every_case_is_anonymised(
    engine: Engine, session: Session, settings: Settings
) -> None:
    caseload.load(session)
    before = _figures(session)
    closed = [c for c in session.exec(select(Case)).all() if c.state in ("closed", "withdrawn")]
    still_open = [c for c in session.exec(select(Case)).all() if c not in closed]
    assert len(closed) >= 5 and still_open
    done = retention.run(session, at=at("2033-06-01"), actor=MANAGER, settings=settings)
    assert {d.id for d in done if d.record == "case"} == {int(c.id or 0) for c in closed}
    session.expire_all()
    assert _figures(session) == before
    for c in closed:
        person = session.exec(select(Person).where(Person.case_id == c.id)).one()
        assert (person.name, c.summary) == (MARKER, MARKER)
    for c in still_open:
        assert c.summary.startswith("Request from")  # open cases keep everything
    with engine.connect() as conn:
        assert audit.find_breaks(conn).breaks == []


# --- The doors: the CLI and the scheduler ---------------------------------------------


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    with cli_on(database_url, monkeypatch, actor="olu.operator") as runner:
        yield runner


def _run(runner: CliRunner, *args: str, expect: int = 0) -> Result:
    result = runner.invoke(app, list(args))
    assert result.exit_code == expect, (result.stdout, result.stderr, result.exception)
    return result


def test_the_cli_plans_holds_and_runs_in_words(
    cli: CliRunner, engine: Engine, session: Session, settings: Settings
) -> None:
    fixture = _hand_listed(session, settings)
    old, recent = fixture["old"].reference, fixture["recent"].reference
    out = _run(cli, "retention", "plan", "--at", "2026-11-30").stdout
    assert f"{len(fixture['expected'])} records would be anonymised" in out
    assert f"Closed case of {old}" in out and f"Text of a notice of {recent}" in out
    assert "Monday 30 November 2026" in out
    for code in ("notice_body", "view_audit", "2026-11-30"):
        assert code not in out
    _run(cli, "retention", "hold", old, "--reason", "Complaint to the Ombudsman")
    assert old not in _run(cli, "retention", "plan", "--at", "2026-11-30").stdout
    _run(cli, "retention", "release", old, "--reason", "Complaint closed")
    out = _run(cli, "retention", "run", "--at", "2026-11-30").stdout
    assert f"Closed case of {old}" in out and "anonymised as at" in out
    assert (
        "nothing is past its retention date"
        in _run(cli, "retention", "run", "--at", "2026-11-30").stdout
    )
    with Session(engine) as fresh:
        logged = fresh.exec(select(OpsEvent)).all()
    assert {o.actor for o in logged} == {"cli:olu.operator"}
    assert [o.action for o in logged].count("retention_run") == 2
    assert "the audit trail verifies" in _run(cli, "audit", "verify").stdout


def test_the_scheduler_runs_retention_daily(engine: Engine, settings: Settings) -> None:
    from apscheduler.schedulers.background import BackgroundScheduler

    status: dict[str, Any] = {}
    scheduler = configure(
        BackgroundScheduler(timezone="UTC"),
        engine,
        settings,
        status,
        retention=retention.run_scheduled,
    )
    job = scheduler.get_job("retention")
    assert job is not None and str(job.trigger).startswith("cron[")
    assert "hour='2'" in str(job.trigger) and "minute='30'" in str(job.trigger)
    job.func(*job.args)
    assert status["last_retention_anonymised"] == 0
    with Session(engine) as s:
        assert [o.actor for o in s.exec(select(OpsEvent)).all()] == ["system:retention"]


def test_the_worker_and_the_embedded_scheduler_hand_in_retention() -> None:
    """Both doors that start a scheduler give it the retention run."""
    import inspect

    from casework.cli import ops
    from casework.web import app as web_app

    for door in (inspect.getsource(ops.worker), inspect.getsource(web_app)):
        assert "retention=run_scheduled" in door


def test_the_schedule_can_keep_a_kind_or_an_outcome_for_longer_or_shorter(
    session: Session, settings: Settings
) -> None:
    fixture = _hand_listed(session, settings)
    shorter = settings.model_copy(
        update={
            "retention": settings.retention.model_copy(
                update={"case_years_by_outcome": {"withdrawn": 5}}
            )
        }
    )
    due = {
        d.reference
        for d in retention.plan(session, at=AT, actor=MANAGER, settings=shorter)
        if d.record == "case"
    }
    assert due == {fixture["old"].reference, fixture["recent"].reference}
    longer = settings.model_copy(
        update={
            "retention": settings.retention.model_copy(
                update={"case_years_by_kind": {"mediation": 7}}
            )
        }
    )
    due = {
        d.reference
        for d in retention.plan(session, at=AT, actor=MANAGER, settings=longer)
        if d.record == "case"
    }
    assert due == set()
