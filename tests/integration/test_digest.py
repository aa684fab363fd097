"""The daily digest: once a day per role, listing what is late and what is due soon."""

from __future__ import annotations

from sqlalchemy import Engine, select
from sqlmodel import Session

from casework.config import Settings
from casework.models import Notice
from casework.reminders import queue_digest, sweep
from tests.conftest import at
from tests.factories import advance, create_case


def test_the_digest_is_queued_once_a_day_and_lists_late_clocks(
    engine: Engine, session: Session, settings: Settings
) -> None:
    case = create_case(session, settings, now=at("2026-11-09"))  # window due Sat 2 Jan 2027
    sweep(engine, at("2027-01-04", "07:00"), settings)  # the window is now missed

    assert queue_digest(engine, at("2027-01-04", "08:00"), settings) == 2
    assert queue_digest(engine, at("2027-01-04", "15:00"), settings) == 0  # same London day
    assert queue_digest(engine, at("2027-01-05", "08:00"), settings) == 2  # next day: again

    digests = list(
        session.execute(
            select(Notice).where(Notice.template == "daily_digest").order_by(Notice.id)  # type: ignore[arg-type]
        ).scalars()
    )
    assert {(n.recipient_role, n.to_address) for n in digests[:2]} == {
        ("adviser", settings.team.adviser_email),
        ("manager", settings.team.manager_email),
    }
    late = digests[0].context["late"]
    assert any(line.startswith(case.reference) and "2 months" in line for line in late), late


def test_a_late_clock_leaves_the_digest_once_the_case_moves_on(
    engine: Engine, session: Session, settings: Settings
) -> None:
    case = create_case(session, settings, now=at("2026-11-09"))
    sweep(engine, at("2027-01-04", "07:00"), settings)  # the 2-month window is missed
    advance(session, settings, case, "withdraw", now=at("2027-01-04", "10:00"), reason="moved")

    queue_digest(engine, at("2027-01-05", "08:00"), settings)
    digest = (
        session.execute(
            select(Notice).where(Notice.template == "daily_digest")  # type: ignore[arg-type]
        )
        .scalars()
        .first()
    )
    assert digest is not None
    assert not any(line.startswith(case.reference) for line in digest.context["late"])
