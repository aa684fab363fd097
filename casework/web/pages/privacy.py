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
from casework.cases import data_requests, legal_hold
from casework.cases.errors import CaseworkError, NotFound, ValidationFailed
from casework.cases.seen_by import who_has_seen
from casework.cases.subject_access import export_subject_access
from casework.cases.unit import load_case
from casework.cases.words import (
    DATA_REQUEST_FIELD_WORDS,
    DATA_REQUEST_KIND_WORDS,
    DATA_REQUEST_STATUS_WORDS,
    DEADLINE_STATUS_WORDS,
    actor_words,
    moment_words,
)
from casework.web.deps import NowDep, PageUserDep, SessionDep
from casework.web.pages.common import (
    date_from_parts,
    date_parts,
    form_text,
    not_found,
    redirect,
    render,
    require_staff,
)
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


# --- Requests to correct or erase personal data --------------------------------------

_WORDS = {
    "kind_words": DATA_REQUEST_KIND_WORDS,
    "status_words": DATA_REQUEST_STATUS_WORDS,
    "deadline_status_words": DEADLINE_STATUS_WORDS,
}
_FIELD_WORDS = {
    "name": "Corrected name",
    "phone": "Corrected telephone",
    "email": "Corrected email",
}
_REQUEST_DONE = {
    "decided": "Decision saved.",
    "extended": "The time to answer has been extended by two months.",
    "done": "Request carried out. The closing record says what was done and what was kept.",
}


def _new_request_page(
    request: Request,
    reference: str,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "data_request_new.html",
        {
            "page_title": "Record a request to correct or erase personal data",
            "reference": reference,
            "kinds": list(DATA_REQUEST_KIND_WORDS.items()),
            "values": values or {"received_on_parts": {}},
            "errors": errors or {},
        },
        status_code=status_code,
    )


@router.get("/cases/{reference}/data-requests/new")
def data_request_new(
    request: Request, session: SessionDep, signed_in: PageUserDep, reference: str
) -> Response:
    require_staff(signed_in, case_page=True)
    try:
        case, _family, _provider = load_case(session, reference)
    except NotFound:
        raise not_found() from None
    return _new_request_page(request, case.reference)


@router.post("/cases/{reference}/data-requests")
def data_request_create(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    form: CheckedForm,
    reference: str,
) -> Response:
    user = require_staff(signed_in, case_page=True)
    values: dict[str, Any] = {
        name: form_text(form, name)
        for name in ("kind", "requested_by", "what", "name", "phone", "email")
    }
    values["received_on_parts"] = date_parts(form, "received_on")
    try:
        data_requests.record_request(
            session,
            reference,
            kind=values["kind"],
            requested_by=values["requested_by"],
            received_on=date_from_parts(
                values["received_on_parts"], "received_on", "When the request was received"
            ),
            what=values["what"],
            changes={k: values[k] for k in ("name", "phone", "email")},
            actor=auth.actor_for(user, "web"),
            now=now,
        )
    except NotFound:
        raise not_found() from None
    except CaseworkError as exc:
        session.rollback()
        field = exc.field if isinstance(exc, ValidationFailed) and exc.field else "kind"
        return _new_request_page(
            request, reference.upper(), values=values, errors={field: str(exc)}, status_code=422
        )
    return redirect(f"/cases/{reference.upper()}?done=data_request#data-protection")


@router.get("/data-requests")
def data_requests_list(request: Request, session: SessionDep, signed_in: PageUserDep) -> Response:
    user = require_manager(signed_in)
    rows = data_requests.list_requests(session, actor=auth.actor_for(user, "web"))
    return render(
        request,
        "data_requests.html",
        {"page_title": "Requests to correct or erase personal data", "rows": rows, **_WORDS},
    )


def _request_page(
    request: Request,
    session: SessionDep,
    user: Any,
    request_id: int,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    done: str = "",
    status_code: int = 200,
) -> Response:
    try:
        row = data_requests.get_request(session, request_id, actor=auth.actor_for(user, "web"))
    except NotFound:
        raise not_found("request") from None
    r = row.request
    decided = ""
    if r.decided_at is not None:
        decided = f"{moment_words(r.decided_at)}, by {actor_words(r.decided_by or '')}"
    return render(
        request,
        "data_request.html",
        {
            "page_title": f"{DATA_REQUEST_KIND_WORDS[r.kind]}: {row.reference}",
            "row": row,
            "changes": [
                (DATA_REQUEST_FIELD_WORDS[k], v)
                for k, v in r.changes.items()
                if k in DATA_REQUEST_FIELD_WORDS
            ],
            "decided": decided,
            "values": values or {},
            "errors": errors or {},
            "done_message": _REQUEST_DONE.get(done, ""),
            **_WORDS,
        },
        status_code=status_code,
    )


@router.get("/data-requests/{request_id}")
def data_request_get(
    request: Request, session: SessionDep, signed_in: PageUserDep, request_id: int, done: str = ""
) -> Response:
    user = require_manager(signed_in)
    return _request_page(request, session, user, request_id, done=done)


def _request_step(
    request: Request,
    session: SessionDep,
    user: Any,
    request_id: int,
    step: Any,
    *,
    values: dict[str, Any],
    default_field: str,
    done: str,
) -> Response:
    try:
        step()
    except NotFound:
        raise not_found("request") from None
    except CaseworkError as exc:
        session.rollback()
        field = exc.field if isinstance(exc, ValidationFailed) and exc.field else default_field
        return _request_page(
            request,
            session,
            user,
            request_id,
            values=values,
            errors={field: str(exc)},
            status_code=422,
        )
    return redirect(f"/data-requests/{request_id}?done={done}")


@router.post("/data-requests/{request_id}/decide")
def data_request_decide(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    form: CheckedForm,
    request_id: int,
) -> Response:
    user = require_manager(signed_in)
    values = {"decision": form_text(form, "decision"), "basis": form_text(form, "basis")}

    def step() -> object:
        if values["decision"] not in ("approve", "refuse"):
            raise ValidationFailed("Choose approve or refuse.", field="decision")
        return data_requests.decide_request(
            session,
            request_id,
            approve=values["decision"] == "approve",
            basis=values["basis"],
            actor=auth.actor_for(user, "web"),
            now=now,
        )

    return _request_step(
        request,
        session,
        user,
        request_id,
        step,
        values=values,
        default_field="decision",
        done="decided",
    )


@router.post("/data-requests/{request_id}/extend")
def data_request_extend(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    form: CheckedForm,
    request_id: int,
) -> Response:
    user = require_manager(signed_in)
    values = {"reason": form_text(form, "reason")}
    return _request_step(
        request,
        session,
        user,
        request_id,
        lambda: data_requests.extend_request(
            session,
            request_id,
            reason=values["reason"],
            actor=auth.actor_for(user, "web"),
            now=now,
        ),
        values=values,
        default_field="reason",
        done="extended",
    )


@router.post("/data-requests/{request_id}/carry-out")
def data_request_carry_out(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    form: CheckedForm,
    request_id: int,
) -> Response:
    user = require_manager(signed_in)
    return _request_step(
        request,
        session,
        user,
        request_id,
        lambda: data_requests.carry_out_request(
            session, request_id, actor=auth.actor_for(user, "web"), now=now
        ),
        values={},
        default_field="_form",
        done="done",
    )


# --- Subject access ---------------------------------------------------------------------


@router.get("/cases/{reference}/subject-access")
def subject_access_get(
    request: Request, session: SessionDep, signed_in: PageUserDep, reference: str
) -> Response:
    require_manager(signed_in)
    try:
        case, _family, _provider = load_case(session, reference)
    except NotFound:
        raise not_found() from None
    return render(
        request,
        "subject_access.html",
        {"page_title": "Export everything held about the family", "reference": case.reference},
    )


@router.post("/cases/{reference}/subject-access")
def subject_access_download(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    form: CheckedForm,
    reference: str,
) -> Response:
    """The ZIP as a download; the use case records the export on each of the family's cases."""
    user = require_manager(signed_in)
    try:
        data = export_subject_access(
            session,
            now=now,
            actor=auth.actor_for(user, "web"),
            reference=reference,
            service_name=request.app.state.settings.service.name,
        )
    except NotFound:
        raise not_found() from None
    name = f"subject-access-{reference.strip().upper()}.zip"
    return Response(
        content=data,
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )
