"""The daily digest: once a day per role, listing what is late and what is due soon."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, select
from sqlmodel import Session

from casework.config import Settings, load_settings
from casework.models import Notice
from casework.notify.render import render
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


def _digest_soon(session: Session) -> tuple[list[str], str]:
    digest = (
        session.execute(
            select(Notice).where(Notice.template == "daily_digest")  # type: ignore[arg-type]
        )
        .scalars()
        .first()
    )
    assert digest is not None
    _subject, body = render("daily_digest", "email", digest.context)
    return digest.context["soon"], body


@pytest.mark.parametrize(
    ("closure_days", "soon_days", "listed", "heading"),
    [
        # Wed 23 Dec 2026 + 3 service days = Thu 24, Tue 29, Wed 30: Sat 2 Jan is later.
        ([], 3, False, "Due in the next 3 service days:"),
        # Closed Thu 24 and Thu 31 Dec: Tue 29, Wed 30, [Fri 1 Jan, weekend], Mon 4 Jan,
        # so the window ending Sat 2 Jan is due soon: the team has fewer days to act.
        ([dt.date(2026, 12, 24), dt.date(2026, 12, 31)], 3, True, "next 3 service days:"),
        # A service that wants a week's notice: 5 service days reach Mon 4 Jan.
        ([], 5, True, "Due in the next 5 service days:"),
    ],
)
def test_due_soon_is_counted_in_configured_service_days(
    engine: Engine,
    session: Session,
    closure_days: list[dt.date],
    soon_days: int,
    listed: bool,
    heading: str,
) -> None:
    settings = load_settings(
        environment="test", closure_days=closure_days, due_soon_service_days=soon_days
    )
    # Decision Mon 2 Nov 2026: the family's 2 months end Sat 2 Jan 2027 (reg 33, statutory:
    # closure days never move it).
    case = create_case(session, settings, now=at("2026-11-09"))
    queue_digest(engine, at("2026-12-23", "08:00"), settings)
    soon, body = _digest_soon(session)
    assert any(line.startswith(case.reference) for line in soon) is listed, soon
    assert heading in body
    if listed:
        assert "due Saturday 2 January 2027" in soon[0]
