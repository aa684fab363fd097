"""What a case page and the dashboard cost in statements and commits: their budgets, counted.

Counted with SQLAlchemy's ``before_cursor_execute`` (every statement sent, BEGIN
included) and ``commit`` events on the app's engine, on both databases. The issue's
goal is 3 statements a page; what these tests prove is the bound stated in each.
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


# The session, the case, the view's seal (lock and chain end in one) and its row, then one
# query each for the allocation, clocks, notices, their deliveries, agreed actions,
# history, notes, documents and recent views. A bound that stops a per-row query
# creeping in, not the goal of 3 (not met: see the closing note of issue 13).
CASE_PAGE_BUDGET = 13


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
    assert len(page.queries) <= CASE_PAGE_BUDGET, page.queries
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
# user (1), one page of cases (1 for each part of the urgency order it walks: here the
# cases with a late duty, none, then those with a clock due, which fill the page) and
# their next clocks (1).
DASHBOARD_BUDGET = 4


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
