"""What a case page and the dashboard cost in statements and commits: their budgets, counted.

Counted with SQLAlchemy's ``before_cursor_execute`` (every statement sent, BEGIN
included) and ``commit`` events on the app's engine, on both databases. Issue 13's
goal: at most 3 queries a page, the sign-in session's own lookup included.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlmodel import Session

from casework import cases
from tests.factories import advance
from tests.web.conftest import Web, events_of, make_case, reload


@dataclass
class Traffic:
    statements: list[str] = field(default_factory=list)
    commits: int = 0
    # Commits of a transaction that wrote something (a read-only snapshot ended with
    # COMMIT on SQLite writes nothing), and the statements before each of them.
    writing_commits: int = 0
    wrote: bool = False
    before_each_commit: list[int] = field(default_factory=list)

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
        head = statement.lstrip().split(None, 1)[0].upper()
        if head not in ("BEGIN", "SELECT"):
            seen.wrote = True

    def committed(conn: Any) -> None:
        seen.commits += 1
        seen.writing_commits += seen.wrote
        seen.wrote = False
        seen.before_each_commit.append(len(seen.statements))

    def rolled_back(conn: Any) -> None:
        seen.wrote = False

    event.listen(web.engine, "before_cursor_execute", before)
    event.listen(web.engine, "commit", committed)
    event.listen(web.engine, "rollback", rolled_back)
    try:
        yield seen
    finally:
        event.remove(web.engine, "before_cursor_execute", before)
        event.remove(web.engine, "commit", committed)
        event.remove(web.engine, "rollback", rolled_back)


# Three reads: the sign-in session and its user; the case with its family contact,
# provider, live allocation and the end of its audit chain (locked for the view's seal);
# every list the page shows (clocks, agreed actions, history, recent views and their
# count, notes, documents, notices and their deliveries) as JSON arrays in one
# statement. One write: the view's audit row, sealed from the chain end already read.
CASE_PAGE_READS = 3


def test_a_case_page_commits_its_view_once_before_reading_its_lists(web: Web) -> None:
    """One commit that writes: the look's audit row. It is committed before the lists
    are read, so the write lock (SQLite's one writer, the case row on PostgreSQL) is
    held for the case's head and the look only, never while a page's lists are read."""
    case = make_case(web, provider="solution-talk", accepted=True)
    browser = web.browser("adviser")
    browser.get(f"/cases/{case.reference}")  # the session's expiry slides once, here
    views_before = [e for e in events_of(web, case.reference) if e.event == "viewed"]
    with traffic_of(web) as page:
        response = browser.get(f"/cases/{case.reference}")
    assert response.status_code == 200 and "Viewed 2 times" in response.text
    views = [e for e in events_of(web, case.reference) if e.event == "viewed"]
    assert len(views) == len(views_before) + 1
    assert page.writing_commits == 1
    # SQLite also ends the sign-in's read snapshot (a COMMIT that writes nothing) to
    # begin again as the writer; PostgreSQL needs no such turn.
    assert page.commits == (2 if web.engine.dialect.name == "sqlite" else 1)
    assert len(page.reads) <= CASE_PAGE_READS, page.reads
    assert len(page.writes) == 1 and page.writes[0].startswith("INSERT INTO case_events")
    lists = next(i for i, s in enumerate(page.statements) if "SELECT version FROM cases" in s)
    assert page.before_each_commit[-1] <= lists  # the look was committed first
    if web.engine.dialect.name == "sqlite":
        look = page.statements.index("BEGIN IMMEDIATE")
        assert page.statements[look + 1].lstrip().startswith("SELECT cases.")
    # Not one query per clock, notice or history row: the same count on a busier case.
    for _ in range(3):
        browser.get(f"/cases/{case.reference}")
    with traffic_of(web) as again:
        browser.get(f"/cases/{case.reference}")
    assert len(again.queries) == len(page.queries)


def test_an_unknown_case_writes_nothing(web: Web) -> None:
    browser = web.browser("adviser")
    browser.get("/")
    with traffic_of(web) as page:
        response = browser.get("/cases/NO-SUCH-1")
    assert response.status_code == 404 and "There is no case at this address" in response.text
    assert page.writing_commits == 0 and page.writes == []


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


def test_a_step_recorded_between_the_look_and_the_lists_is_shown_whole(web: Web) -> None:
    """The look commits before the lists are read, so someone may record a step in
    between. The page then reads the case's head again with the lists: it never shows
    the case as it was beside the clocks and history of what it has become."""
    case = make_case(web)
    browser = web.browser("adviser")
    browser.get("/")  # the session's expiry slides here, not during the page below
    stepped: list[bool] = []

    def record_a_step_after_the_look(session: Session) -> None:
        if stepped or not any(e.event == "viewed" for e in events_of(web, case.reference)):
            return  # not yet the look's commit (SQLite first ends the sign-in's reads)
        stepped.append(True)
        with web.session() as s:
            advance(s, web.settings, cases.get_case(s, case.reference), "advise")

    event.listen(Session, "after_commit", record_a_step_after_the_look)
    try:
        with traffic_of(web) as page:
            response = browser.get(f"/cases/{case.reference}")
    finally:
        event.remove(Session, "after_commit", record_a_step_after_the_look)
    assert stepped and response.status_code == 200
    looked = [e for e in events_of(web, case.reference) if e.event == "viewed"]
    assert [e.from_state for e in looked] == ["requested"]  # the look, as it was then
    assert reload(web, case.reference).state == "advised"
    heading = re.search(r'<h1 class="govuk-heading-l">(.*?)</h1>', response.text, re.S)
    assert heading is not None
    assert "Advised" in heading.group(1) and "Requested" not in heading.group(1)
    # ...and the history it shows holds the step that made it so.
    assert "Requested → Advised" in response.text
    # The case's head was read twice: for the look, and again with the lists.
    heads = [q for q in page.reads if "allocation_provider.id AS" in q]
    assert len(heads) == 2, page.reads
