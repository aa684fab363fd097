"""Signing in never fails with a server error while the scheduler writes (SQLite).

The built-in scheduler sends notices from the same process as the pages; on SQLite
a writer that started as a reader can be refused outright when another commits in
between. 100 sign-ins run while a dispatcher thread keeps sending a stream of
notices: every one answers 303 (signed in), none 500.
"""

from __future__ import annotations

import threading

import pytest

from casework import cases
from casework.notify.dispatch import dispatch
from casework.scheduler import run_once
from tests.factories import create_case
from tests.web.conftest import PASSWORD, Web, csrf_in

SIGN_INS = 100


@pytest.mark.slow
def test_a_hundred_sign_ins_while_the_dispatcher_sends(web: Web) -> None:
    if web.engine.dialect.name != "sqlite":
        pytest.skip("a refused read-then-write is SQLite's hazard; PostgreSQL queues writers")
    with web.session() as s:
        for _ in range(30):
            create_case(s, web.settings)  # each queues its acknowledgements
    stop = threading.Event()
    failures: list[BaseException] = []

    def keep_sending() -> None:
        moment = web.clock.now
        while not stop.is_set():
            try:
                dispatch(web.engine, moment, web.settings)
                with web.session() as s:
                    create_case(s, web.settings, now=moment)
            except cases.Conflict:
                pass  # a lost race is retried on the next turn, as the worker does
            except BaseException as exc:  # pragma: no cover - reported below
                failures.append(exc)
                return

    sender = threading.Thread(target=keep_sending, daemon=True)
    sender.start()
    statuses: list[int] = []
    try:
        for _ in range(SIGN_INS):
            browser = web.browser()
            page = browser.get("/sign-in")
            answer = browser.post(
                "/sign-in",
                {"email": web.users["adviser"].email, "password": PASSWORD},
                csrf=csrf_in(page.text),
            )
            statuses.append(answer.status_code)
    finally:
        stop.set()
        sender.join(timeout=30)
    assert not failures, failures
    assert statuses == [303] * SIGN_INS, sorted(set(statuses))
    run_once(web.engine, web.settings, web.clock.now)
