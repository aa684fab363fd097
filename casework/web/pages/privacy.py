"""The manager's data-protection pages for a case: who has seen it, legal hold, requests
to correct or erase, and the subject access export.

Each handler parses, calls one use case in :mod:`casework.cases` and renders; the rules
(who may, what is recorded) live in the use cases.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from casework import auth
from casework.cases import legal_hold
from casework.cases.errors import CaseworkError, NotFound, ValidationFailed
from casework.cases.seen_by import who_has_seen
from casework.cases.unit import load_case
from casework.cases.words import actor_words, moment_words
from casework.web.deps import NowDep, PageUserDep, SessionDep
from casework.web.pages.common import form_text, not_found, redirect, render
from casework.web.pages.manager import require_manager
from casework.web.security import CheckedForm

router = APIRouter(include_in_schema=False)


@router.get("/cases/{reference}/seen-by")
def seen_by_get(
    request: Request, session: SessionDep, signed_in: PageUserDep, reference: str
) -> Response:
    user = require_manager(signed_in)
    try:
        seen = who_has_seen(session, reference, actor=auth.actor_for(user, "web"))
    except NotFound:
        raise not_found() from None
    return render(
        request, "seen_by.html", {"page_title": f"Who has seen {seen.reference}", "seen": seen}
    )


def _hold_page(
    request: Request,
    session: SessionDep,
    reference: str,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    try:
        case, _family, _provider = load_case(session, reference)
    except NotFound:
        raise not_found() from None
    return render(
        request,
        "legal_hold.html",
        {
            "page_title": f"Legal hold on {case.reference}",
            "case": case,
            "held_since": moment_words(case.legal_hold_at),
            "held_by": actor_words(case.legal_hold_by or ""),
            "errors": errors or {},
            "values": values or {"reason": ""},
        },
        status_code=status_code,
    )


@router.get("/cases/{reference}/legal-hold")
def legal_hold_get(
    request: Request, session: SessionDep, signed_in: PageUserDep, reference: str
) -> Response:
    require_manager(signed_in)
    return _hold_page(request, session, reference)


@router.post("/cases/{reference}/legal-hold")
def legal_hold_post(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    form: CheckedForm,
    reference: str,
) -> Response:
    user = require_manager(signed_in)
    reason = form_text(form, "reason")
    change = (
        legal_hold.clear_legal_hold
        if form_text(form, "action") == "clear"
        else legal_hold.set_legal_hold
    )
    try:
        case = change(session, reference, reason=reason, actor=auth.actor_for(user, "web"), now=now)
    except NotFound:
        raise not_found() from None
    except CaseworkError as exc:
        session.rollback()
        field = exc.field if isinstance(exc, ValidationFailed) and exc.field else "reason"
        return _hold_page(
            request,
            session,
            reference,
            errors={field: str(exc)},
            values={"reason": reason},
            status_code=422,
        )
    done = "legal_hold_cleared" if change is legal_hold.clear_legal_hold else "legal_hold_set"
    return redirect(f"/cases/{case.reference}?done={done}#data-protection")
