"""``/deadlines``: the legal clocks across the cases this token can see."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AfterValidator
from sqlalchemy import select
from sqlalchemy.sql import ColumnElement
from sqlmodel import col

from casework import cases
from casework import deadlines as dl
from casework.cases.fields import EARLIEST_DATE
from casework.driver import fixed
from casework.models import Case, Deadline, DeadlineStatus
from casework.web.api.common import (
    ApiRoute,
    ApiUser,
    Limit,
    Offset,
    is_provider,
    page_of,
)
from casework.web.api.schemas import DeadlinePageOut, DeadlineRowOut
from casework.web.api.views import deadline_out
from casework.web.deps import NowDep, SessionDep, SettingsDep

router = APIRouter(route_class=ApiRoute)


def _a_case_date(value: dt.date | None) -> dt.date | None:
    """A day a SEND case could have (a bare number such as 0 would read as 1970)."""
    if value is not None and value < EARLIEST_DATE:
        raise ValueError(f"give a date on or after {EARLIEST_DATE.isoformat()} (YYYY-MM-DD)")
    return value


@router.get("/deadlines", response_model=DeadlinePageOut, summary="Deadlines, soonest first")
def list_deadlines(
    user: ApiUser,
    session: SessionDep,
    now: NowDep,
    settings: SettingsDep,
    limit: Limit = 50,
    offset: Offset = 0,
    status: Annotated[
        DeadlineStatus, Query(description="open, met, missed or cancelled")
    ] = DeadlineStatus.open,
    due_before: Annotated[
        dt.date | None,
        Query(description="Only deadlines due before this date (YYYY-MM-DD)"),
        AfterValidator(_a_case_date),
    ] = None,
) -> DeadlinePageOut:
    """Deadlines on the cases this token can see, each with how it was worked out."""
    conditions: list[ColumnElement[bool]] = [col(Deadline.status) == fixed(status.value)]
    if is_provider(user):
        # The cases the provider may open: an ended case's clocks leave with it.
        assert user.provider_id is not None
        held = cases.provider_case_ids(user.provider_id, now=now, settings=settings)
        conditions.append(col(Deadline.case_id).in_(held))
    if due_before is not None:
        conditions.append(col(Deadline.due_date) < due_before)
    rows, total = page_of(
        session,
        select(Deadline, col(Case.reference))
        .join(Case, col(Case.id) == col(Deadline.case_id))
        .order_by(col(Deadline.due_at), col(Deadline.id)),
        Deadline,
        conditions,
        limit,
        offset,
    )
    today = dl.local_date(now)
    items = [
        DeadlineRowOut(reference=ref, **deadline_out(d, today).model_dump()) for d, ref in rows
    ]
    return DeadlinePageOut(items=items, total=total, limit=limit, offset=offset)
