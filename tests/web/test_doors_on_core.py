"""A step posted through a web door is loaded and written on Core, as the CLI's is.

Each door reads the case first (its 404, the form's fields); it then lets go of what it
read (``cases.release_case_rows``), so the use case loads the case, family, provider and
clocks with one Core select and writes the step without the unit of work: within the
same 8 statements and one commit as ``tests/integration/test_transition_statements``,
on both databases. The refusals (another provider's case, a stale version, a withdrawn
case) still come back in words through each door.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from casework import auth, cases
from casework.models import User
from tests.conftest import ADVISER, at
from tests.web.conftest import START, Web, make_case, reload

MAX_STATEMENTS = 8
TX_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")
SCHEDULE = {
    "meeting_on-day": "12",
    "meeting_on-month": "11",
    "meeting_on-year": "2026",
    "meeting_time": "10:00",
}


@dataclass
class Spied:
    """Per step the door ran: whether it was written on Core, its statements, its commits."""

    on_core: list[bool] = field(default_factory=list)
    statements: list[list[str]] = field(default_factory=list)
    commits: list[int] = field(default_factory=list)


@pytest.fixture
def spied(web: Web, monkeypatch: pytest.MonkeyPatch) -> Iterator[Spied]:
    """Spies on the Core writer and counts what each ``record_step`` sends to the database."""
    seen = Spied()
    in_door = False
    advance_module = sys.modules["casework.cases.advance"]
    real_write = advance_module.write_detached_step
    real_step = cases.record_step

    def write(*args: Any, **kwargs: Any) -> bool:
        written = real_write(*args, **kwargs)
        if in_door:  # not the steps a test's setup records directly
            seen.on_core.append(written)
        return written

    def step(*args: Any, **kwargs: Any) -> Any:
        nonlocal in_door
        in_door = True
        statements: list[str] = []
        commits = [0]

        def before(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
            if not statement.lstrip().upper().startswith(TX_CONTROL):
                statements.append(statement)

        def committed(conn: Any) -> None:
            commits[0] += 1

        event.listen(web.engine, "before_cursor_execute", before)
        event.listen(web.engine, "commit", committed)
        try:
            return real_step(*args, **kwargs)
        finally:
            in_door = False
            event.remove(web.engine, "before_cursor_execute", before)
            event.remove(web.engine, "commit", committed)
            seen.statements.append(statements)
            seen.commits.append(commits[0])

    monkeypatch.setattr(advance_module, "write_detached_step", write)
    monkeypatch.setattr(cases, "record_step", step)
    yield seen


def _assert_on_core(spied: Spied) -> None:
    assert spied.on_core == [True]
    assert spied.commits == [1]
    assert len(spied.statements[0]) <= MAX_STATEMENTS, [s[:90] for s in spied.statements[0]]


def _api(web: Web, who: str) -> Callable[[str, dict[str, Any]], Any]:
    with web.session() as s:
        user = s.get(User, web.users[who].id)
        assert user is not None
        token = auth.create_api_token(s, user, name="tests", now=START)
    client = TestClient(web.app)
    headers = {"Authorization": f"Bearer {token}"}
    return lambda url, body: client.post(url, headers=headers, json=body)


def _withdrawn(web: Web, **kwargs: Any) -> str:
    reference = make_case(web, **kwargs).reference
    with web.session() as s:
        cases.advance(
            s,
            reference,
            "withdraw",
            now=at("2026-11-11"),
            actor=ADVISER,
            settings=web.settings,
            data={"reason": "the family withdrew"},
        )
    return reference


# --- The adviser's case page ---------------------------------------------------------------


def test_the_case_page_records_a_step_on_core(web: Web, spied: Spied) -> None:
    case = make_case(web)
    response = web.browser("adviser").post(
        f"/cases/{case.reference}/events/advise", {"version": str(case.version)}
    )
    assert response.status_code == 303, response.text
    _assert_on_core(spied)
    after = reload(web, case.reference)
    assert (after.state, after.version) == ("advised", case.version + 1)


def test_the_case_page_still_refuses_in_words(web: Web, spied: Spied) -> None:
    browser = web.browser("adviser")
    case = make_case(web)
    stale = browser.post(f"/cases/{case.reference}/events/advise", {"version": "99"})
    assert stale.status_code == 409 and "changed by someone else" in stale.text
    withdrawn = _withdrawn(web)
    version = str(reload(web, withdrawn).version)
    ended = browser.post(f"/cases/{withdrawn}/events/advise", {"version": version})
    assert ended.status_code == 409 and "withdrawn" in ended.text
    assert reload(web, withdrawn).state == "withdrawn"
    assert spied.on_core == []  # refused before anything was written


# --- The provider portal -------------------------------------------------------------------


def test_the_portal_records_a_step_on_core(web: Web, spied: Spied) -> None:
    case = make_case(web, provider="solution-talk", accepted=True, mediating=True)
    response = web.browser("provider_a").post(
        f"/portal/cases/{case.reference}/events/report_not_arranged",
        {"version": str(case.version), "told_on-day": "", "told_on-month": "", "told_on-year": ""},
    )
    assert response.status_code == 303, response.text
    _assert_on_core(spied)
    assert reload(web, case.reference).not_arranged_reported_on is not None


def test_the_portal_still_refuses_in_words(web: Web, spied: Spied) -> None:
    case = make_case(web, provider="solution-talk", accepted=True, mediating=True)
    version = str(case.version)
    other = web.browser("provider_b").post(
        f"/portal/cases/{case.reference}/events/schedule_meeting", {"version": version, **SCHEDULE}
    )
    assert other.status_code == 404 and "not found" in other.text.lower()
    browser = web.browser("provider_a")
    stale = browser.post(
        f"/portal/cases/{case.reference}/events/schedule_meeting", {"version": "99", **SCHEDULE}
    )
    assert stale.status_code == 409 and "changed by someone else" in stale.text
    assert reload(web, case.reference).meeting_on is None
    assert spied.on_core == []  # refused before anything was written


# --- The API -------------------------------------------------------------------------------


def test_the_api_records_a_step_on_core(web: Web, spied: Spied) -> None:
    case = make_case(web)
    post = _api(web, "adviser")
    response = post(
        f"/api/v1/cases/{case.reference}/events",
        {"event": "advise", "expected_version": case.version},
    )
    assert response.status_code == 200, response.text
    _assert_on_core(spied)
    body = response.json()
    assert (body["state"], body["version"]) == ("advised", case.version + 1)


def test_the_api_still_refuses_in_words(web: Web, spied: Spied) -> None:
    case = make_case(web, provider="solution-talk", accepted=True, mediating=True)
    other = _api(web, "provider_b")(
        f"/api/v1/cases/{case.reference}/events",
        {"event": "schedule_meeting", "data": {"meeting_on": "2026-11-12"}},
    )
    assert other.status_code == 404 and other.json()["error"]
    post = _api(web, "adviser")
    stale = post(
        f"/api/v1/cases/{case.reference}/events",
        {"event": "withdraw", "data": {"reason": "x"}, "expected_version": 99},
    )
    assert stale.status_code == 409 and "changed by someone else" in stale.json()["error"]
    withdrawn = _withdrawn(web)
    ended = post(f"/api/v1/cases/{withdrawn}/events", {"event": "advise"})
    assert ended.status_code == 409 and "withdrawn" in ended.json()["error"]
    assert spied.on_core == []  # refused before anything was written
