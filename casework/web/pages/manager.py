"""The manager's late-and-at-risk page and acknowledging escalations."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlmodel import Session, col

from casework import auth, cases, urgency
from casework import deadlines as dl
from casework.driver import fixed
from casework.models import (
    Case,
    Deadline,
    DeadlineStatus,
    Notice,
    Provider,
    User,
    UserSession,
)
from casework.web.deps import NowDep, PageUserDep, SessionDep
from casework.web.pages.common import (
    MANAGER_ROLES,
    PageError,
    RagStatus,
    form_text,
    not_found,
    rag_for,
    redirect,
    render,
    require_staff,
)
from casework.web.pages.labels import DEADLINE_LABELS, DONE_MESSAGES
from casework.web.security import CheckedForm

router = APIRouter(include_in_schema=False)


MANAGER_LIMIT = 500


@dataclass
class RiskRow:
    deadline: Deadline
    reference: str
    state: str
    provider_name: str
    label: str
    rag: RagStatus | None


def require_manager(signed_in: tuple[User, UserSession]) -> User:
    user = require_staff(signed_in)
    if user.role not in MANAGER_ROLES:
        raise PageError(
            403, "You cannot use this page", "This page is for IAS managers and administrators."
        )
    return user


def _escalations(session: Session) -> list[tuple[Notice, str | None]]:
    return [
        (n, ref)
        for n, ref in session.execute(
            select(Notice, col(Case.reference))
            .outerjoin(Case, col(Case.id) == Notice.case_id)
            .where(
                col(Notice.recipient_role).in_(["adviser", "manager"]),
                col(Notice.template).startswith("escalation"),
                col(Notice.acknowledged_at).is_(None),
            )
            .order_by(col(Notice.created_at).desc())
            .limit(MANAGER_LIMIT)
        ).all()
    ]


@router.get("/manager")
def manager_get(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    done: str = "",
) -> Response:
    require_manager(signed_in)
    today = dl.local_date(now)
    settings = request.app.state.settings
    horizon = urgency.due_soon_horizon(today, settings.due_soon_service_days, settings.calendars)
    rows = session.execute(
        select(Deadline, col(Case.reference), col(Case.state), col(Provider.name))
        .join(Case, col(Case.id) == Deadline.case_id)
        .outerjoin(Provider, col(Provider.id) == Case.provider_id)
        .where(
            (
                (col(Deadline.status) == fixed(DeadlineStatus.open))
                & (col(Deadline.due_date) <= horizon)
            )
            | cases.LATE_OUTSTANDING
        )
        .order_by(col(Deadline.due_at), col(Deadline.id))
        .limit(MANAGER_LIMIT + 1)
    ).all()
    risks = [
        RiskRow(
            d,
            ref,
            state,
            pname or "",
            DEADLINE_LABELS.get(d.kind, d.kind),
            rag_for(d, now, request.app.state.settings),
        )
        for d, ref, state, pname in rows
    ]
    truncated = len(risks) > MANAGER_LIMIT
    risks = risks[:MANAGER_LIMIT]
    overdue = [r for r in risks if r.rag is not None and r.rag.colour == "red"]
    at_risk = [r for r in risks if r.rag is None or r.rag.colour != "red"]
    return render(
        request,
        "manager.html",
        {
            "page_title": "Late and at risk",
            "overdue": overdue,
            "at_risk": at_risk,
            "truncated": truncated,
            "limit": MANAGER_LIMIT,
            "escalations": _escalations(session),
            "done_message": DONE_MESSAGES.get(done, ""),
            "horizon": horizon,
            "soon_days": settings.due_soon_service_days,
        },
    )


@router.post("/manager/escalations/{public_id}/acknowledge")
def manager_acknowledge(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    form: CheckedForm,
    public_id: str,
) -> Response:
    user = require_manager(signed_in)
    try:
        cases.acknowledge_escalation(
            session,
            public_id,
            now=now,
            actor=auth.actor_for(user, "web"),
            note=form_text(form, "note"),
        )
    except cases.NotFound:
        raise not_found("escalation") from None
    return redirect("/manager?done=acknowledged")
