"""With ``sql_echo`` on, statements run on the driver's cursor are logged like every other.

The transition hot path compiles its statements once and runs them on the DB-API
cursor (:mod:`casework.driver`); an operator who turns ``sql_echo`` on to see what a
step sends must see those statements too, not only the ones SQLAlchemy ran itself.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlmodel import Session

from casework import cases
from casework.config import Settings
from casework.db import make_engine, upgrade
from tests.conftest import ADVISER, at
from tests.factories import create_case


@pytest.mark.parametrize("hide", [False, True])
def test_a_steps_driver_statements_are_in_the_echo_log(
    tmp_path: Path, settings: Settings, caplog: pytest.LogCaptureFixture, hide: bool
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/echo.db", echo=True)
    if hide:
        engine.hide_parameters = True
    try:
        upgrade(engine)
        with Session(engine, expire_on_commit=False) as session:
            case = create_case(session, settings, name="Echo Family")
            session.commit()
        caplog.clear()
        with (
            caplog.at_level(logging.INFO, logger="sqlalchemy.engine.Engine"),
            Session(engine, expire_on_commit=False) as session,
        ):
            cases.advance(
                session, case.reference, "advise", now=at("2026-11-12"), actor=ADVISER,
                settings=settings,
            )  # fmt: skip
        logged = [r.getMessage() for r in caplog.records]
        assert any(m.startswith("INSERT INTO case_events") for m in logged), logged
        assert any(m.startswith("UPDATE cases") for m in logged), logged
        parameters = [m for m in logged if m.startswith("[driver]")]
        assert parameters
        if hide:
            assert all("hidden" in m for m in parameters)
            assert not any("Echo Family" in m for m in logged)
        else:
            assert any("advise" in m for m in parameters)
    finally:
        engine.dispose()
