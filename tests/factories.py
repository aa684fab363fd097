"""Factories with sensible defaults: ``create_case(session, settings, **overrides)``.

Tests read like the domain: a family rings the helpline about a refused
assessment; the case is advised; the family chooses mediation; and so on.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlmodel import Session

from casework import cases
from casework.config import Settings
from casework.models import Allocation, Case
from tests.conftest import ADVISER, at

_phone_counter = iter(range(100000, 999999))


def intake(**overrides: Any) -> cases.Intake:
    values: dict[str, Any] = {
        "kind": "mediation",
        "name": "Jo Family",
        "phone": f"07911 {next(_phone_counter):06d}",
        "channel": "helpline",
        "email": "jo.family@example.org",
        "decision_date": dt.date(2026, 11, 2),
        "decision_type": "refuse_assessment",
    }
    values.update(overrides)
    return cases.Intake(**values)


def create_case(
    session: Session,
    settings: Settings,
    *,
    now: dt.datetime | None = None,
    actor: cases.Actor = ADVISER,
    **overrides: Any,
) -> Case:
    return cases.open_case(
        session, intake(**overrides), now=now or at("2026-11-09"), actor=actor, settings=settings
    )


def advance(
    session: Session,
    settings: Settings,
    case: Case,
    event: str,
    *,
    now: dt.datetime | None = None,
    actor: cases.Actor = ADVISER,
    **data: Any,
) -> Case:
    return cases.advance(
        session,
        case.reference,
        event,
        now=now or at("2026-11-10"),
        actor=actor,
        settings=settings,
        data=data,
    )


def allocate_to(
    session: Session,
    reference: str,
    provider: str,
    *,
    now: dt.datetime,
    settings: Settings,
    actor: cases.Actor = ADVISER,
    note: str = "",
    override_reason: str = "the provider this test names",
) -> Allocation:
    """Allocate to a named provider, whatever the rota suggests (with a reason on record)."""
    allocation, _suggestion = cases.allocate(
        session,
        reference,
        provider,
        now=now,
        actor=actor,
        settings=settings,
        note=note,
        override_reason=override_reason,
    )
    return allocation
