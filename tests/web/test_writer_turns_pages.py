"""Through the case page and the API: a write is not refused because another writer
committed while the request was reading (see tests/integration/test_writer_turns.py).

The request runs in a thread while another transaction holds SQLite's write lock (a
locked row on PostgreSQL) and commits 0.4 s later; the adviser's note or allocation
must be saved, once, with no "changed by someone else".
"""

from __future__ import annotations

import threading
import time
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, update
from sqlmodel import Session, col

from casework import auth
from casework.models import Allocation, Case, CaseEvent, CaseNote, User
from tests.web.conftest import Web, make_case

WAIT_SECONDS = 0.4


def _while_another_case_is_written(engine: Engine, other_case_id: int, request: Any) -> Any:
    holder = Session(engine, expire_on_commit=False)
    if engine.dialect.name == "sqlite":
        holder.connection(execution_options={"claim": True})  # BEGIN IMMEDIATE
    holder.execute(
        update(Case).where(col(Case.id) == other_case_id).values(version=col(Case.version) + 1)
    )
    answer: list[Any] = []
    thread = threading.Thread(target=lambda: answer.append(request()))
    thread.start()
    time.sleep(WAIT_SECONDS)
    holder.commit()
    holder.close()
    thread.join(timeout=30)
    assert answer, "the request did not finish"
    return answer[0]


def _count(web: Web, model: Any, case_id: int) -> int:
    with web.session() as s:
        return s.execute(
            select(func.count()).select_from(model).where(col(model.case_id) == case_id)
        ).scalar_one()


def test_a_note_from_the_case_page_is_saved_while_another_case_is_written(web: Web) -> None:
    busy = make_case(web, name="Busy Family")
    quiet = make_case(web, name="Quiet Family")
    browser = web.browser("adviser")
    saved = _while_another_case_is_written(
        web.engine,
        int(busy.id or 0),
        lambda: browser.post(
            f"/cases/{quiet.reference}/notes", {"text": "Rang back", "visibility": "ias"}
        ),
    )
    assert saved.status_code == 303, saved.text
    assert _count(web, CaseNote, int(quiet.id or 0)) == 1


def test_an_allocation_through_the_api_is_saved_while_another_case_is_written(web: Web) -> None:
    busy = make_case(web, name="Busy Family")
    quiet = make_case(web, name="Quiet Family")
    with web.session() as s:
        user = s.get(User, web.users["adviser"].id)
        assert user is not None
        token = auth.create_api_token(s, user, name="tests", now=web.clock())
    api = TestClient(web.app)
    made = _while_another_case_is_written(
        web.engine,
        int(busy.id or 0),
        lambda: api.post(
            f"/api/v1/cases/{quiet.reference}/allocation",
            headers={"Authorization": f"Bearer {token}"},
            json={"provider": "collis", "override_reason": "the family asked for Collis"},
        ),
    )
    assert made.status_code in (200, 201), made.text
    assert _count(web, Allocation, int(quiet.id or 0)) == 1


def test_a_case_page_is_shown_and_its_look_recorded_while_another_case_is_written(
    web: Web,
) -> None:
    """The sign-in reads while another writer holds the lock and then commits; the look
    begins again as the writer (SQLite) and is recorded once, never refused."""
    busy = make_case(web, name="Busy Family")
    quiet = make_case(web, name="Quiet Family")
    browser = web.browser("adviser")
    browser.get("/")  # the session's expiry slides here, not during the page below
    shown = _while_another_case_is_written(
        web.engine, int(busy.id or 0), lambda: browser.get(f"/cases/{quiet.reference}")
    )
    assert shown.status_code == 200, shown.text
    assert "Quiet Family" in shown.text and "Viewed 1 time" in shown.text
    with web.session() as s:
        looks = s.execute(
            select(func.count())
            .select_from(CaseEvent)
            .where(col(CaseEvent.case_id) == quiet.id, col(CaseEvent.event) == "viewed")
        ).scalar_one()
    assert looks == 1
