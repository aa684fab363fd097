"""Moved to :mod:`casework.cases`; this facade stays only while the doors move to it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlmodel import Session

from casework import cases as _cases
from casework.cases import *  # noqa: F403
from casework.cases import (
    SYSTEM,
    Actor,
    CaseworkError,
    Conflict,
    Intake,
    NotFound,
    NotPermitted,
    TransitionContext,
    TransitionRefused,
    ValidationFailed,
    update_case_facts,
)
from casework.cases.access import check_actor_may_see
from casework.cases.effects import check_may_record, spec_for
from casework.cases.fields import EventField
from casework.config import Settings
from casework.models import Allocation, Case
from casework.states import CaseKind

__all__ = [
    "SYSTEM",
    "Actor",
    "CaseworkError",
    "Conflict",
    "Intake",
    "NotFound",
    "NotPermitted",
    "TransitionContext",
    "TransitionRefused",
    "ValidationFailed",
    "update_case_facts",
]

# The doors still read these until they map error classes themselves.
for _cls, _exit, _status in (
    (CaseworkError, 1, 400),
    (NotFound, 3, 404),
    (ValidationFailed, 2, 422),
    (TransitionRefused, 2, 409),
    (NotPermitted, 2, 403),
    (Conflict, 4, 409),
):
    _cls.exit_code = _exit  # type: ignore[attr-defined]
    _cls.http_status = _status  # type: ignore[attr-defined]


def allowed_events(case: Case) -> list[tuple[str, tuple[EventField, ...]]]:
    return [(name, spec.fields) for name, spec in _cases.allowed_events(case)]


def parse_event_data(
    kind: CaseKind | str, event: str, raw: Mapping[str, Any], *, today: dt.date
) -> dict[str, Any]:
    spec = spec_for(kind, event)
    fields = spec.fields if spec else ()
    return _cases.parse_event_data(fields, spec.label if spec else event, raw, today=today)


def allocate(
    session: Session,
    reference: str,
    provider_name: str,
    *,
    now: dt.datetime,
    actor: Actor,
    settings: Settings,
    note: str = "",
    override_reason: str = "",
) -> Allocation:
    allocation, _ = _cases.allocate(
        session,
        reference,
        provider_name,
        now=now,
        actor=actor,
        settings=settings,
        note=note,
        override_reason=override_reason or "allocated from the command line",
    )
    return allocation


def _check_actor_may_act(case: Case, actor: Actor, event: str | None = None) -> None:
    check_actor_may_see(case, actor)
    if event is not None:
        spec = spec_for(case.kind, event)
        if spec is not None:
            check_may_record(spec, actor, case)


def _run_hooks(session: Session, ctx: TransitionContext) -> None:
    from casework.notices import queue_event_notices

    queue_event_notices(session, ctx)
