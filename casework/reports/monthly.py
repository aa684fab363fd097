"""The monthly email to the commissioners: last month's figures and where to get the CSV.

Queued through the outbox like every other notice, from a scheduler job, on the
first working day of each month. The idempotency key is the month and the
address, so a second worker, a restart or a re-run queues nothing new; and a
service that was down on the first working day catches up on its next run that
month instead of skipping it.

The outbox has no attachments yet, so the email carries a link to the CSV
download (sign-in required) rather than the file itself; it names aggregates only,
suppressed exactly as commissioners see them on the pages.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Engine
from sqlmodel import Session

from casework import deadlines as dl
from casework.config import Settings
from casework.notices import insert_notices, outbox_row
from casework.reports import formatting as fmt
from casework.reports.queries import Period, sen2, timeliness

TEMPLATE = "monthly_report"


def recipients(settings: Settings) -> list[str]:
    """The commissioners' addresses from config: ``[reports] monthly_recipients``."""
    return [a.strip() for a in settings.reports.monthly_recipients if a.strip()]


def first_working_day(
    year: int, month: int, calendar: dl.WorkingCalendar = dl.STATUTORY
) -> dt.date:
    """The day the report goes out: a send day, so the service's own calendar."""
    return calendar.next_working_day_on_or_after(dt.date(year, month, 1))


def previous_month(today: dt.date) -> Period:
    end = today.replace(day=1) - dt.timedelta(days=1)
    return Period(end.replace(day=1), end)


def month_key(period: Period, address: str) -> str:
    return f"monthly-report:{period.start:%Y-%m}:{address.lower()}"


def queue_monthly_report(engine: Engine, now: dt.datetime, settings: Settings) -> int:
    """Queue last month's report to each commissioner once; the number queued.

    Nothing before this month's first working day; from then on, every run in the
    month is harmless (the key collides).
    """
    today = dl.local_date(now)
    if today < first_working_day(today.year, today.month, settings.calendars.service):
        return 0
    addresses = recipients(settings)
    if not addresses:
        return 0
    period = previous_month(today)
    with Session(engine) as session:
        context = _context(session, period, now, settings)
        rows = [
            outbox_row(
                key=month_key(period, address),
                case_id=None,
                template=TEMPLATE,
                recipient="commissioner",
                channel="email",
                address=address,
                context=context,
                not_before=now,
                now=now,
            )
            for address in addresses
        ]
        queued = insert_notices(session, rows)
        session.commit()
    return len(queued)


def _context(
    session: Session, period: Period, now: dt.datetime, settings: Settings
) -> dict[str, Any]:
    rows = [r for r in timeliness(session, period, as_of=now) if r.provider == "all"]
    due = sum(r.due for r in rows)
    on_time = sum(r.met_on_time for r in rows)
    decided = sum(r.decided for r in rows)
    percent = round(100.0 * on_time / decided, 1) if decided else None
    year = sen2(session, Period(dt.date(period.start.year, 1, 1), period.end))
    base = settings.public_url.rstrip("/")
    query = urlencode({"from": period.start.isoformat(), "to": period.end.isoformat()})
    return {
        "notice_kind": "report",
        "reference": "",
        "service_name": settings.service.name,
        "month_text": period.start.strftime("%B %Y"),
        "clocks_due": fmt.count_text(due, suppress=True),
        "on_time": fmt.count_text(on_time, suppress=True),
        "percent_on_time": fmt.derived_text(percent, decided, "%", suppress=True),
        "year_text": str(period.start.year),
        "held_so_far": fmt.count_text(year.mediation_cases_held, suppress=True),
        "appeals_so_far": fmt.count_text(year.followed_by_appeal, suppress=True),
        "csv_link": f"{base}/reports/download/figures.csv?{query}",
        "reports_link": f"{base}/reports?{query}",
    }
