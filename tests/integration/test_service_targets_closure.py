"""Service targets opened by the use cases run on the service calendar; legal clocks do not.

The service is closed on Thu 24 Dec 2026. Hand-worked:

- A disagreement-resolution request on Wed 23 Dec 2026, advice within 5 service days:
  Tue 29 (1), Wed 30 (2), Thu 31 (3), Mon 4 Jan (4), Tue 5 Jan 2027 (5). Counting the
  closure day as the law would gives Mon 4 Jan: one day less for the team.
- A mediation case opened the same day keeps its legal clock: decision Mon 2 Nov 2026
  + 2 months = Sat 2 Jan 2027 (reg 33, calendar months; no calendar can move it).

The first test needs the use cases to hand ``settings.calendars.service`` to
``deadlines.service_target``; until they do it is an expected failure, and ``strict``
makes it fail loudly as soon as they do, so the marker is then removed.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine, select
from sqlmodel import Session

from casework.config import load_settings
from casework.models import Deadline
from tests.conftest import at
from tests.factories import create_case

CLOSED = [dt.date(2026, 12, 24)]


def _due(session: Session, case_id: int, kind: str) -> dt.date:
    due = session.execute(
        select(Deadline.due_date).where(Deadline.case_id == case_id, Deadline.kind == kind)  # type: ignore[arg-type]
    ).scalar_one()
    return due


def test_a_service_target_skips_the_closure_day(engine: Engine, session: Session) -> None:
    settings = load_settings(environment="test", closure_days=CLOSED)
    case = create_case(
        session,
        settings,
        now=at("2026-12-23"),
        kind="disagreement",
        decision_date=None,
        decision_type=None,
    )
    assert _due(session, case.id, "dr_advice") == dt.date(2027, 1, 5)


def test_a_legal_clock_ignores_the_closure_day(engine: Engine, session: Session) -> None:
    settings = load_settings(environment="test", closure_days=CLOSED)
    case = create_case(session, settings, now=at("2026-12-23"))
    assert _due(session, case.id, "contact_adviser") == dt.date(2027, 1, 2)
