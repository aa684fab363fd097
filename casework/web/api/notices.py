"""``/notices``: the outbox and each notice's delivery."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select
from sqlalchemy.sql import ColumnElement
from sqlmodel import col

from casework import cases
from casework.auth import actor_for
from casework.cases.provider_view import notices_condition
from casework.driver import fixed
from casework.models import Case, Notice, NoticeStatus
from casework.web.api.common import (
    ApiRoute,
    ApiUser,
    Limit,
    Offset,
    Reference,
    end_read,
    forbid_provider,
    is_provider,
    page_of,
    visible_case,
)
from casework.web.api.schemas import MessageIn, NoticeOut, NoticePageOut
from casework.web.deps import NowDep, SessionDep, SettingsDep

router = APIRouter(route_class=ApiRoute)


@router.get("/notices", response_model=NoticePageOut, summary="Notices and their delivery status")
def list_notices(
    user: ApiUser,
    session: SessionDep,
    now: NowDep,
    settings: SettingsDep,
    limit: Limit = 50,
    offset: Offset = 0,
    case: Annotated[
        str | None, Query(max_length=32, description="Only this case's notices (reference)")
    ] = None,
    status: Annotated[NoticeStatus | None, Query(description="Only notices in this status")] = None,
) -> NoticePageOut:
    """Newest first. Provider staff see only the notices sent to their provider."""
    conditions: list[ColumnElement[bool]] = []
    if is_provider(user):
        assert user.provider_id is not None
        conditions.append(notices_condition(user.provider_id, now=now, settings=settings))
    if case is not None:
        found = visible_case(session, user, case, now=now, settings=settings)
        conditions.append(col(Notice.case_id) == found.id)
    if status is not None:
        conditions.append(col(Notice.status) == fixed(status.value))
    rows, total = page_of(
        session,
        select(Notice, col(Case.reference))
        .outerjoin(Case, col(Case.id) == col(Notice.case_id))
        .order_by(col(Notice.id).desc()),
        Notice,
        conditions,
        limit,
        offset,
    )
    items = [notice_out(n, ref) for n, ref in rows]
    return NoticePageOut(items=items, total=total, limit=limit, offset=offset)


def notice_out(n: Notice, ref: str | None) -> NoticeOut:
    return NoticeOut(
        id=n.public_id,
        reference=ref,
        template=n.template,
        recipient_role=n.recipient_role,
        channel=n.channel,
        to_address=n.to_address,
        subject=n.subject,
        status=n.status,
        not_before=n.not_before,
        attempts=n.attempts,
        created_at=n.created_at,
        sent_at=n.sent_at,
        delivered_at=n.delivered_at,
        last_error=n.last_error,
    )


@router.post(
    "/cases/{reference}/messages",
    response_model=NoticeOut,
    status_code=201,
    summary="Send the family a one-off email or text message",
)
def post_message(
    reference: Reference,
    body: MessageIn,
    user: ApiUser,
    session: SessionDep,
    now: NowDep,
    settings: SettingsDep,
) -> NoticeOut:
    """Queue a message to the family through the notices (a text waits out the quiet hours).

    Refused with 422 when the channel cannot reach the family (no email address; no
    mobile number, or no consent to texts). Provider staff cannot send one.
    """
    case = visible_case(session, user, reference, now=now, settings=settings)
    forbid_provider(user, "message the family")
    end_read(session)
    notice = cases.send_message(
        session,
        case.reference,
        channel=body.channel,
        text=body.text,
        key=body.idempotency_key,
        now=now,
        actor=actor_for(user, "api"),
        settings=settings,
    )
    return notice_out(notice, case.reference)
