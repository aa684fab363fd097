"""The commissioners' monthly email: queued through the outbox on the first working day.

January 2027 starts on a bank holiday (New Year's Day, a Friday), so its first working
day is Monday 4 January; December 2026 starts on a Tuesday. The email names
aggregates only, suppressed as commissioners see them, and links to the CSV.
"""

from __future__ import annotations

import re

from sqlalchemy import Engine, select
from sqlmodel import Session

from casework.config import Settings
from casework.models import Notice
from casework.notify.render import render
from casework.reports.monthly import first_working_day, queue_monthly_report
from casework.scheduler import run_once
from tests import caseload
from tests.conftest import at

COMMISSIONERS = ["send.commissioning@council.example.org", "send@icb.example.org"]


def _with_recipients(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "reports": settings.reports.model_copy(update={"monthly_recipients": COMMISSIONERS})
        }
    )


def test_first_working_day() -> None:
    assert first_working_day(2027, 1).isoformat() == "2027-01-04"
    assert first_working_day(2026, 12).isoformat() == "2026-12-01"
    assert first_working_day(2026, 8).isoformat() == "2026-08-03"  # 1 August is a Saturday


def test_queued_once_a_month_from_its_first_working_day(
    engine: Engine, session: Session, settings: Settings
) -> None:
    caseload.load(session)
    settings = _with_recipients(settings)
    assert queue_monthly_report(engine, at("2027-01-01", "08:30"), settings) == 0
    assert queue_monthly_report(engine, at("2027-01-04", "08:30"), settings) == 2
    assert queue_monthly_report(engine, at("2027-01-04", "08:31"), settings) == 0
    # A worker that was down on the 4th catches up later in the month, but only once.
    assert queue_monthly_report(engine, at("2027-01-20", "08:30"), settings) == 0
    assert queue_monthly_report(engine, at("2027-02-01", "08:30"), settings) == 2

    notices = session.execute(select(Notice).order_by(Notice.id)).scalars().all()  # type: ignore[arg-type]
    assert [(n.to_address, n.recipient_role, n.channel) for n in notices[:2]] == [
        (COMMISSIONERS[0], "commissioner", "email"),
        (COMMISSIONERS[1], "commissioner", "email"),
    ]
    subject, body = render(notices[0].template, "email", dict(notices[0].context))
    assert subject == "IAS Manchester: report for December 2026"
    # December 2026: one clock due, the meeting of 23 December, missed by January.
    assert "Clocks that fell due: fewer than 5" in body
    assert "Met on time: 0\n" in body
    assert "Share of settled clocks met on time: withheld (fewer than 5)" in body
    assert "Mediation cases held in 2026 so far: fewer than 5" in body
    assert "/reports/download/figures.csv?from=2026-12-01&to=2026-12-31" in body
    for secret in caseload.PERSONAL:
        assert not re.search(rf"(?<!\w){re.escape(secret)}(?!\w)", body, re.I), secret


def test_no_recipients_no_email(engine: Engine, session: Session, settings: Settings) -> None:
    assert queue_monthly_report(engine, at("2026-12-01", "08:30"), settings) == 0


def test_the_dispatcher_sends_it(engine: Engine, session: Session, settings: Settings) -> None:
    session.commit()  # end the fixture's read transaction: the queue writes on its own
    settings = _with_recipients(settings)
    now = at("2026-12-01", "08:30")
    assert queue_monthly_report(engine, now, settings) == 2
    run_once(engine, settings, now)
    session.commit()
    statuses = session.execute(select(Notice.status)).scalars().all()  # type: ignore[call-overload]
    assert sorted(statuses) == ["sent", "sent"]
