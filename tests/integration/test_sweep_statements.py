"""How many statements one sweep sends, whatever the number of due clocks.

The sweep is set-based: one query claims a batch of clocks joined to their case,
family and provider; the notices (one ``INSERT ... SELECT`` that joins the clocks to
their case, family and provider and builds each notice in SQL), the clock updates
and the sealed audit rows of missed clocks are each written with one statement. So
up to the batch size the count does not grow with the clocks: a per-row lookup or
write creeping back in makes the larger sweep here send more statements than the
smaller.
"""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Engine, event, select
from sqlmodel import Session, col

from casework.config import Settings
from casework.models import CaseEvent, Notice
from casework.notices import VALUES_ROWS_PER_STATEMENT
from casework.notify.escalate import delivery_failed_row
from casework.notify.render import render, template_keys, templates_available
from casework.reminders import _ALWAYS_KEPT, sweep
from tests.conftest import at
from tests.factories import create_case

# Statements (cursor executions, transaction control aside) one sweep may send,
# whatever the number of due clocks up to the batch size: the claim, the notice
# INSERT ... SELECT (on SQLite, plus a count of the new rows when some keys were
# already queued), the UPDATE of clocks still running and the UPDATE of missed ones
# (on PostgreSQL one UPDATE FROM unnest for both), the chain ends (plus their row
# locks on PostgreSQL), the audit INSERT, and an empty claim when the batch was full.
# Beyond the batch size, all of it again per batch.
STATEMENT_BOUND = 8
LATE = at("2027-09-01")  # every clock of a case opened in November 2026 has run out


def _count_statements(engine: Engine, run: Any) -> list[str]:
    seen: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement.split(None, 1)[0].upper())

    event.listen(engine, "before_cursor_execute", before)
    try:
        run()
    finally:
        event.remove(engine, "before_cursor_execute", before)
    return seen


def _notice_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return len(conn.execute(select(col(Notice.id))).all())


def _open_cases(session: Session, settings: Settings, n: int, day: str) -> None:
    for _ in range(n):
        create_case(session, settings, now=at(day))
    session.commit()


def test_statements_do_not_grow_with_the_due_clocks(
    engine: Engine, session: Session, settings: Settings
) -> None:
    counts = {}
    for n, day in ((2, "2026-11-09"), (9, "2026-11-10")):
        _open_cases(session, settings, n, day)
        before = _notice_count(engine)
        statements = _count_statements(
            engine, lambda n=n: sweep(engine, LATE + dt.timedelta(days=n), settings)
        )
        written = _notice_count(engine) - before
        assert 0 < written <= VALUES_ROWS_PER_STATEMENT  # one page of notices each time
        counts[n] = statements
    with engine.connect() as conn:
        missed = conn.execute(
            select(col(CaseEvent.id)).where(col(CaseEvent.event) == "deadline_missed")
        ).all()
    assert len(missed) >= 11  # every case's clocks ran out: the audit path was taken
    work = {
        n: [s for s in st if s not in ("BEGIN", "COMMIT", "ROLLBACK")] for n, st in counts.items()
    }
    assert work[2] == work[9], work
    assert len(work[9]) <= STATEMENT_BOUND, work[9]


def test_swept_notices_carry_what_their_templates_read_and_no_more(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """Each notice renders on every channel of its template and in the adviser's
    "could not deliver" escalation (which re-renders a failed notice's context), and
    carries no key of the case that none of those templates reads."""
    _open_cases(session, settings, 2, "2026-11-09")
    sweep(engine, LATE, settings)
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                col(Notice.template),
                col(Notice.channel),
                col(Notice.context),
                col(Notice.recipient_role),
            ).where(col(Notice.deadline_id).is_not(None))
        ).all()
    assert len({r.template for r in rows}) >= 2, rows  # reminders and escalations
    for row in rows:
        context = dict(row.context)
        kept = template_keys(row.template)
        assert kept is not None
        assert set(context) <= kept | _ALWAYS_KEPT, (row.template, set(context) - kept)
        for channel in ("email", "sms"):
            if (row.template, channel) in templates_available():
                render(row.template, channel, context)
        failed = delivery_failed_row(
            SimpleNamespace(
                id=1,
                public_id="n1",
                case_id=1,
                recipient_role=row.recipient_role,
                channel=row.channel,
                template=row.template,
                context=context,
            ),
            LATE,
            "the address bounced",
            settings,
        )
        if failed is not None:  # None: a failed notice to the manager is only logged
            render(failed["template"], "email", failed["context"])
