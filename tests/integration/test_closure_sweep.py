"""The sweep warns the adviser the service day before a legal clock due on a closure day.

Decision sent Sat 24 Oct 2026: the family's 2 months to contact the adviser end Thu
24 Dec 2026 (reg 33, calendar months), the day config/manchester.toml's example closes
the service. The closure cannot move the clock, so the adviser is warned on Wed 23 Dec
at 09:00 (GMT) instead, on top of the clock's own rules (the 3-day "near" escalation
went out Mon 21 Dec).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlmodel import Session

from casework.config import load_settings
from casework.models import Deadline, Notice
from casework.reminders import sweep
from tests.conftest import at
from tests.factories import create_case


@pytest.mark.parametrize(("closed", "warned"), [(True, True), (False, False)])
def test_a_clock_due_on_a_closure_day_is_escalated_the_day_before(
    engine: Engine, session: Session, closed: bool, warned: bool
) -> None:
    settings = load_settings(
        environment="test", closure_days=[dt.date(2026, 12, 24)] if closed else []
    )
    case = create_case(session, settings, now=at("2026-11-09"), decision_date=dt.date(2026, 10, 24))
    due = session.execute(
        select(Deadline.due_date).where(
            Deadline.case_id == case.id,  # type: ignore[arg-type]
            Deadline.kind == "contact_adviser",  # type: ignore[arg-type]
        )
    ).scalar_one()
    assert due == dt.date(2026, 12, 24)

    def escalations_near() -> dict[str, Any]:
        with engine.connect() as conn:  # a fresh read of what the sweeps committed
            rows = conn.execute(
                select(Notice.idempotency_key, Notice.recipient_role, Notice.context).where(
                    Notice.case_id == case.id,  # type: ignore[arg-type]
                    Notice.template == "escalation_near",  # type: ignore[arg-type]
                )
            ).all()
        return {row.idempotency_key: row for row in rows}

    sweep(engine, at("2026-12-21", "09:00"), settings)  # the clock's 3-day escalation
    monday = escalations_near()
    assert [key for key in monday if ":window-3d-adviser:" in key]
    assert not [key for key in monday if ":closure-day-" in key]
    sweep(engine, at("2026-12-22", "09:00"), settings)
    assert escalations_near().keys() == monday.keys()

    sweep(engine, at("2026-12-23", "09:00"), settings)
    near = escalations_near()
    closure = [n for key, n in near.items() if ":closure-day-adviser:" in key]
    assert bool(closure) is warned, sorted(near)
    assert any(":window-3d-adviser:" in key for key in near)  # the clock's own rule
    if warned:
        (notice,) = closure
        assert notice.recipient_role == "adviser"
        assert notice.context["due_text"] == "Thursday 24 December 2026"
