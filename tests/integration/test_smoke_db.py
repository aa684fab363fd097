"""Open → advance → reload on both databases: the spine survives a new session."""

from __future__ import annotations

from sqlalchemy import Engine

from casework import cases
from casework.config import Settings
from casework.db import session_scope
from tests.conftest import at
from tests.factories import advance, create_case


def test_open_advance_reload(engine: Engine, session, settings: Settings) -> None:
    case = create_case(session, settings)
    advance(session, settings, case, "advise", now=at("2026-11-10"))
    advance(session, settings, case, "decline", now=at("2026-11-11"))
    with session_scope(engine) as fresh:
        reloaded = cases.get_case(fresh, case.reference)
        assert reloaded.state == "declined"
        assert reloaded.version == 3
        kinds = {(d.kind, d.status) for d in cases.case_deadlines(fresh, reloaded)}
        assert ("certificate_after_decline", "open") in kinds
        assert ("contact_adviser", "met") in kinds
