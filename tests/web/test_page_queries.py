"""What a case page and the dashboard cost in statements and commits: their budgets, counted.

Counted with SQLAlchemy's ``before_cursor_execute`` (every statement sent, BEGIN
included) and ``commit`` events on the app's engine, on both databases. Issue 13's
goal: at most 3 queries a page, the sign-in session's own lookup included.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event

from tests.web.conftest import Web, events_of, make_case


@dataclass
class Traffic:
    statements: list[str] = field(default_factory=list)
    commits: int = 0

    @property
    def queries(self) -> list[str]:
        """Statements other than the BEGIN that opens a transaction."""
        return [s for s in self.statements if not s.startswith("BEGIN")]

    @property
    def reads(self) -> list[str]:
        return [s for s in self.queries if s.lstrip().upper().startswith("SELECT")]

    @property
    def writes(self) -> list[str]:
        return [s for s in self.queries if s not in self.reads]

    @property
    def transactions(self) -> int:
        return sum(1 for s in self.statements if s.startswith("BEGIN"))


@contextmanager
def traffic_of(web: Web) -> Iterator[Traffic]:
    seen = Traffic()

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.statements.append(statement)

    def committed(conn: Any) -> None:
        seen.commits += 1

    event.listen(web.engine, "before_cursor_execute", before)
    event.listen(web.engine, "commit", committed)
    try:
        yield seen
    finally:
        event.remove(web.engine, "before_cursor_execute", before)
        event.remove(web.engine, "commit", committed)


# Three reads: the sign-in session and its user; the case with its family contact,
# provider, live allocation and the end of its audit chain (locked for the view's seal);
# every list the page shows (clocks, agreed actions, history, recent views and their
# count, notes, documents, notices and their deliveries) as JSON arrays in one
# statement. One write: the view's audit row, sealed from the chain end already read.
CASE_PAGE_READS = 3


def test_a_case_page_is_one_transaction_with_its_view_and_a_bounded_number_of_queries(
    web: Web,
) -> None:
    case = make_case(web, provider="solution-talk", accepted=True)
    browser = web.browser("adviser")
    browser.get(f"/cases/{case.reference}")  # the session's expiry slides once, here
    views_before = [e for e in events_of(web, case.reference) if e.event == "viewed"]
    with traffic_of(web) as page:
        response = browser.get(f"/cases/{case.reference}")
    assert response.status_code == 200 and "Viewed 2 times" in response.text
    views = [e for e in events_of(web, case.reference) if e.event == "viewed"]
    assert len(views) == len(views_before) + 1
    assert page.commits == 1 and page.transactions <= 1
    assert len(page.reads) <= CASE_PAGE_READS, page.reads
    assert len(page.writes) == 1 and page.writes[0].startswith("INSERT INTO case_events")
    # Not one query per clock, notice or history row: the same count on a busier case.
    for _ in range(3):
        browser.get(f"/cases/{case.reference}")
    with traffic_of(web) as again:
        browser.get(f"/cases/{case.reference}")
    assert len(again.queries) == len(page.queries)


def test_an_unknown_case_costs_no_commit(web: Web) -> None:
    browser = web.browser("adviser")
    browser.get("/")
    with traffic_of(web) as page:
        response = browser.get("/cases/NO-SUCH-1")
    assert response.status_code == 404 and "There is no case at this address" in response.text
    assert page.commits == 0


# The dashboard, with its counts and providers cached (15 seconds): the session and its
# user (1), then one page of cases with each case's next clock joined (1 for each part
# of the urgency order it walks: here the cases with a late duty, none, then those
# with a clock due, which fill the page).
DASHBOARD_BUDGET = 3


def test_the_dashboard_reads_a_full_page_in_a_bounded_number_of_queries(web: Web) -> None:
    for i in range(27):
        make_case(web, name=f"Family {i}")
    browser = web.browser("adviser")
    browser.get("/")  # counts per state cached, the session's expiry slid
    with traffic_of(web) as page:
        response = browser.get("/")
    assert response.status_code == 200 and "page 1 of 2" in response.text
    assert page.commits == 0
    assert len(page.queries) <= DASHBOARD_BUDGET, page.queries


def test_a_busy_case_page_reads_no_more_and_shows_every_list(web: Web) -> None:
    """Clocks, notices, history and views on one case: still three reads, all shown."""
    case = make_case(web, provider="solution-talk", accepted=True)
    browser = web.browser("adviser")
    for _ in range(12):  # more views than the ten the page lists
        browser.get(f"/cases/{case.reference}")
    with traffic_of(web) as page:
        response = browser.get(f"/cases/{case.reference}")
    assert response.status_code == 200 and "Viewed 13 times" in response.text
    assert len(page.reads) <= CASE_PAGE_READS, page.reads
