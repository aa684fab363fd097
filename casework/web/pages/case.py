"""The adviser's case page: events, allocation and corrections to the case's facts.

Provider staff get 404 on any case URL here (not 403), so a reference they were not
given is not confirmed to exist; their pages are the portal's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlmodel import Session, col

from casework import auth, cases
from casework.cases import allocation, family
from casework.config import Settings
from casework.law import load_law
from casework.models import Case, Provider, User, UserSession
from casework.web.deps import NowDep, PageUserDep, SessionDep, in_one_thread
from casework.web.pages.case_view import (
    build_case_view,
    download,
    load_case,
    post_case_event,
    refusal_page,
    render_case_view,
)
from casework.web.pages.common import (
    date_from_parts,
    date_parts,
    forget_counts,
    form_text,
    form_version,
    not_found,
    redirect,
    render,
    require_staff,
)
from casework.web.pages.labels import DECISION_TYPE_LABELS
from casework.web.security import CheckedForm

router = APIRouter(include_in_schema=False)


def _staff_case(session: Session, signed_in: tuple[User, UserSession], reference: str) -> Any:
    require_staff(signed_in, case_page=True)
    found = load_case(session, reference)
    if found is None:
        raise not_found()
    return found


def case_page(
    request: Request,
    session: Session,
    user: User,
    now: dt.datetime,
    reference: str,
    *,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    open_event: str | None = None,
    values: dict[str, Any] | None = None,
    banner: str = "",
    banner_title: str = "",
    done: str = "",
    record: bool = False,
    warned: bool = False,
) -> HTMLResponse:
    """The adviser's case page, optionally re-rendered with one form's errors.

    ``record``: the look is written to the case's audit trail, the request's one
    commit, before anything of the case is read for the page
    (:func:`casework.cases.case_detail`).
    """
    try:
        view = build_case_view(
            session, reference, user, now, request.app.state.settings, record=record
        )
    except cases.NotFound:
        raise not_found() from None
    case = view.case
    return render_case_view(
        request,
        "case.html",
        view,
        status_code=status_code,
        errors=errors,
        open_event=open_event,
        values=values,
        banner=banner,
        banner_title=banner_title,
        done=done,
        warned=warned,
        extra={
            "can_allocate": cases.can_allocate(case) is None,
            "reissuable": cases.reissuable_kinds(auth.actor_for(user, "web")),
            "decision_types": list(DECISION_TYPE_LABELS.items()),
            "reg44_matters": [
                (key, limit.description.rstrip(".")) for key, limit in load_law().reg44.items()
            ],
        },
    )


@router.get("/cases/{reference}")
@in_one_thread
def case_get(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    reference: str,
    done: str = "",
    warned: str = "",
) -> Response:
    user = require_staff(signed_in, case_page=True)
    return case_page(
        request, session, user, now, reference, done=done, record=True, warned=warned == "1"
    )


def _recorded(
    request: Request,
    session: Session,
    now: dt.datetime,
    user: User,
    reference: str,
    action: Callable[[], object],
    *,
    open_event: str,
    values: dict[str, Any],
    done: str,
    may_warn: bool = False,
) -> Response:
    """Run one use case from a case-page form (post/redirect/get).

    A refusal brings the case page back with the message beside its field and what
    was typed still in the form; nothing the use case began is kept. ``may_warn``: the
    use case may keep a warning on its audit row, which the page after the redirect
    shows (if there is one).
    """
    try:
        action()
    except cases.CaseworkError as exc:
        session.rollback()
        return refusal_page(
            request,
            session,
            user,
            now,
            reference,
            exc,
            open_event=open_event,
            values=values,
            render_case=case_page,
        )
    warned = "&warned=1" if may_warn else ""
    return redirect(f"/cases/{quote(reference)}?done={done}{warned}")


@router.post("/cases/{reference}/events/{event}")
def case_event_post(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    form: CheckedForm,
    reference: str,
    event: str,
) -> Response:
    user = require_staff(signed_in, case_page=True)
    case: Case = _staff_case(session, signed_in, reference)[0]
    response = post_case_event(
        request,
        session,
        now,
        user,
        case,
        event,
        form,
        channel="web",
        render_case=case_page,
        done_url=f"/cases/{quote(case.reference)}",
    )
    if response.status_code == 303:
        forget_counts(request)
    return response


def allocate_page(
    request: Request,
    session: Session,
    user: User,
    now: dt.datetime,
    reference: str,
    *,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    banner: str = "",
    banner_title: str = "",
    **_: Any,
) -> HTMLResponse:
    """Choose a provider, with the rules' suggestion and why.

    A page of its own rather than part of the case page: the suggestion counts
    every provider's open cases, which the case page should not pay for on every
    view.
    """
    found = load_case(session, reference)
    if found is None:
        raise not_found()
    case, _family = found
    settings: Settings = request.app.state.settings
    suggestion = None
    if cases.can_allocate(case) is None:
        try:
            suggestion = allocation.suggest(session, case, settings)
        except cases.CaseworkError:
            suggestion = None
    current = cases.live_allocation(session, case)
    providers = list(
        session.execute(
            select(Provider).where(col(Provider.active)).order_by(col(Provider.name))
        ).scalars()
    )
    return render(
        request,
        "allocate.html",
        {
            "page_title": f"Allocate {case.reference}",
            "case": case,
            "current": session.get(Provider, current.provider_id) if current else None,
            "suggestion": suggestion,
            "providers": [(p.code, p.name) for p in providers],
            "can_allocate": cases.can_allocate(case) is None,
            "reissuable": cases.reissuable_kinds(auth.actor_for(user, "web")),
            "errors": errors or {},
            "values": values or {},
            "banner": banner,
            "banner_title": banner_title,
        },
        status_code=status_code,
    )


@router.get("/cases/{reference}/allocate")
def case_allocate_get(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    reference: str,
) -> Response:
    user = require_staff(signed_in, case_page=True)
    return allocate_page(request, session, user, now, reference)


@router.post("/cases/{reference}/allocate")
def case_allocate_post(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    form: CheckedForm,
    reference: str,
) -> Response:
    user = require_staff(signed_in, case_page=True)
    settings: Settings = request.app.state.settings
    case: Case = _staff_case(session, signed_in, reference)[0]
    values = {n: form_text(form, n) for n in ("provider", "preferred", "note", "override_reason")}
    try:
        if not values["provider"]:
            raise cases.ValidationFailed("Choose the provider to allocate", field="provider")
        # The rules decide whether this choice needs a reason (it departs from the
        # suggestion worked out now); see casework.allocation.
        allocation.allocate(
            session,
            case.reference,
            values["provider"],
            now=now,
            actor=auth.actor_for(user, "web"),
            settings=settings,
            note=values["note"],
            override_reason=values["override_reason"],
            preferred=values["preferred"] or None,
            expected_version=form_version(form),
        )
    except cases.CaseworkError as exc:
        session.rollback()
        return refusal_page(
            request, session, user, now, reference, exc, values=values, render_case=allocate_page
        )
    forget_counts(request)
    return redirect(f"/cases/{quote(case.reference)}?done=allocated")


@router.post("/cases/{reference}/facts")
def case_facts_post(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    form: CheckedForm,
    reference: str,
) -> Response:
    user = require_staff(signed_in, case_page=True)
    settings: Settings = request.app.state.settings
    case: Case = _staff_case(session, signed_in, reference)[0]
    values: dict[str, Any] = {
        n: form_text(form, n)
        for n in ("decision_type", "note", "reg32_info_given", "child_name", "summary")
    }
    values["decision_date_parts"] = date_parts(form, "decision_date")
    values["la_told_on_parts"] = date_parts(form, "la_told_on")
    # A field not in the form (an older page) keeps its value.
    child_name = values["child_name"] if "child_name" in form else None
    summary = values["summary"] if "summary" in form else None

    def attempt() -> None:
        decision_date = date_from_parts(
            values["decision_date_parts"], "decision_date", "The decision date"
        )
        la_told_on = date_from_parts(
            values["la_told_on_parts"], "la_told_on", "The date the LA was told mediation is wanted"
        )
        # An unchanged type is no correction: the use case records only what changed.
        decision_type = values["decision_type"] or None
        cases.update_case_facts(
            session,
            case.reference,
            now=now,
            actor=auth.actor_for(user, "web"),
            settings=settings,
            decision_date=decision_date,
            decision_type=decision_type,
            reg32_info_given={"yes": True, "no": False}.get(values["reg32_info_given"]),
            child_name=child_name,
            summary=summary,
            la_told_on=la_told_on,
            note=values["note"],
            expected_version=form_version(form),
        )

    return _recorded(
        request,
        session,
        now,
        user,
        case.reference,
        attempt,
        open_event="facts",
        values=values,
        done="facts",
    )


@router.post("/cases/{reference}/adviser")
def case_adviser_post(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    form: CheckedForm,
    reference: str,
) -> Response:
    user = require_staff(signed_in, case_page=True)
    case: Case = _staff_case(session, signed_in, reference)[0]
    values: dict[str, Any] = {
        "adviser": form_text(form, "adviser"),
        "note": form_text(form, "note"),
    }

    def attempt() -> None:
        cases.change_adviser(
            session,
            case.reference,
            values["adviser"],
            now=now,
            actor=auth.actor_for(user, "web"),
            reason=values["note"],
        )

    return _recorded(
        request,
        session,
        now,
        user,
        case.reference,
        attempt,
        open_event="adviser",
        values=values,
        done="adviser",
    )


@router.post("/cases/{reference}/agreements")
def case_agreement_post(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    form: CheckedForm,
    reference: str,
) -> Response:
    """Record one action agreed at mediation (the use case opens its clock)."""
    user = require_staff(signed_in, case_page=True)
    case: Case = _staff_case(session, signed_in, reference)[0]
    values: dict[str, Any] = {n: form_text(form, n) for n in ("description", "body", "matter")}
    values["agreed_due_on_parts"] = date_parts(form, "agreed_due_on")

    def attempt() -> None:
        due = date_from_parts(
            values["agreed_due_on_parts"],
            "agreed_due_on",
            "The date the parties agreed in writing",
        )
        cases.add_agreement_item(
            session,
            case.reference,
            description=values["description"],
            body=values["body"] or "la",
            matter=values["matter"] or None,
            agreed_due_on=due,
            now=now,
            actor=auth.actor_for(user, "web"),
            settings=request.app.state.settings,
        )

    return _recorded(
        request,
        session,
        now,
        user,
        case.reference,
        attempt,
        open_event="add_agreement_item",
        values=values,
        done="agreed#agreed",
    )


@router.post("/cases/{reference}/agreements/{number}/done")
def case_agreement_done_post(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    form: CheckedForm,
    reference: str,
    number: int,
) -> Response:
    """The LA (or ICB) carried out one agreed action: its clock is met on that day."""
    user = require_staff(signed_in, case_page=True)
    case: Case = _staff_case(session, signed_in, reference)[0]
    values: dict[str, Any] = {"done_on_parts": date_parts(form, "done_on")}

    def attempt() -> None:
        done_on = date_from_parts(
            values["done_on_parts"], "done_on", "The date the agreed action was carried out"
        )
        cases.record_agreement_item_done(
            session,
            case.reference,
            number,
            done_on=done_on,
            now=now,
            actor=auth.actor_for(user, "web"),
            settings=request.app.state.settings,
        )

    return _recorded(
        request,
        session,
        now,
        user,
        case.reference,
        attempt,
        open_event=f"agreement_done_{number}",
        values=values,
        done="agreement_done#agreed",
    )


@router.post("/cases/{reference}/notes")
def case_note_post(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    form: CheckedForm,
    reference: str,
) -> Response:
    """Write a note on the case, for the IAS only or shared with the provider."""
    user = require_staff(signed_in, case_page=True)
    case: Case = _staff_case(session, signed_in, reference)[0]
    values: dict[str, Any] = {n: form_text(form, n) for n in ("text", "visibility")}

    def attempt() -> None:
        cases.add_note(
            session,
            case.reference,
            text=values["text"],
            shared=values["visibility"] == "shared",
            now=now,
            actor=auth.actor_for(user, "web"),
        )

    return _recorded(
        request,
        session,
        now,
        user,
        case.reference,
        attempt,
        open_event="note",
        values=values,
        done="note#notes",
    )


@router.post("/cases/{reference}/messages")
def case_message_post(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    form: CheckedForm,
    reference: str,
) -> Response:
    """Send the family a one-off email or text message through the notices."""
    user = require_staff(signed_in, case_page=True)
    case: Case = _staff_case(session, signed_in, reference)[0]
    values: dict[str, Any] = {n: form_text(form, n) for n in ("channel", "text", "message_key")}

    def attempt() -> None:
        cases.send_message(
            session,
            case.reference,
            channel=values["channel"],
            text=values["text"],
            key=values["message_key"],
            now=now,
            actor=auth.actor_for(user, "web"),
            settings=request.app.state.settings,
        )

    return _recorded(
        request,
        session,
        now,
        user,
        case.reference,
        attempt,
        open_event="message",
        values=values,
        done="message#timeline",
    )


@router.post("/cases/{reference}/calls")
def case_call_post(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    form: CheckedForm,
    reference: str,
) -> Response:
    """Log a call on the day it happened."""
    user = require_staff(signed_in, case_page=True)
    case: Case = _staff_case(session, signed_in, reference)[0]
    values: dict[str, Any] = {
        n: form_text(form, n) for n in ("direction", "who", "summary", "visibility")
    }
    values["call_on_parts"] = date_parts(form, "call_on")

    def attempt() -> None:
        call_on = date_from_parts(values["call_on_parts"], "call_on", "The date of the call")
        cases.log_call(
            session,
            case.reference,
            call_on=call_on,
            direction=values["direction"],
            who=values["who"],
            summary=values["summary"],
            shared=values["visibility"] == "shared",
            now=now,
            actor=auth.actor_for(user, "web"),
        )

    return _recorded(
        request,
        session,
        now,
        user,
        case.reference,
        attempt,
        open_event="call",
        values=values,
        done="call#notes",
    )


@router.post("/cases/{reference}/contact")
def case_contact_post(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    form: CheckedForm,
    reference: str,
) -> Response:
    """Correct the family's contact, with a reason; queued notices follow the new details."""
    user = require_staff(signed_in, case_page=True)
    case: Case = _staff_case(session, signed_in, reference)[0]
    values: dict[str, Any] = {
        n: form_text(form, n)
        for n in ("name", "phone", "email", "sms_consent", "reason", *cases.ADDRESS_FIELDS)
    }
    values["preferred_channels"] = [
        c for c in form.getlist("preferred_channels") if isinstance(c, str)
    ]

    def attempt() -> None:
        cases.update_contact(
            session,
            case.reference,
            name=values["name"],
            phone=values["phone"],
            email=values["email"],
            preferred_channels=",".join(values["preferred_channels"]),
            sms_consent=values["sms_consent"] == "yes" if values["sms_consent"] else None,
            address={f: values[f] for f in cases.ADDRESS_FIELDS},
            reason=values["reason"],
            now=now,
            actor=auth.actor_for(user, "web"),
            expected_version=form_version(form),
        )

    return _recorded(
        request,
        session,
        now,
        user,
        case.reference,
        attempt,
        open_event="contact",
        values=values,
        done="contact",
        may_warn=True,
    )


@router.get("/cases/{reference}/documents/{document_id}")
def case_document_get(
    session: SessionDep, now: NowDep, signed_in: PageUserDep, reference: str, document_id: int
) -> Response:
    """Download one of the case's documents; the download is in the case's audit trail."""
    user = require_staff(signed_in, case_page=True)
    case: Case = _staff_case(session, signed_in, reference)[0]
    return download(session, user, now, case, document_id, "web")


@router.post("/cases/{reference}/certificates/{number}/reissue")
def case_certificate_reissue(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    form: CheckedForm,
    reference: str,
    number: str,
) -> Response:
    """Correct a certificate: a new version from the case as it is now (same number)."""
    user = require_staff(signed_in, case_page=True)
    case: Case = _staff_case(session, signed_in, reference)[0]
    values: dict[str, Any] = {"reason": form_text(form, "reason")}

    def attempt() -> None:
        cases.reissue_certificate(
            session,
            case.reference,
            number,
            reason=values["reason"],
            now=now,
            actor=auth.actor_for(user, "web"),
            settings=request.app.state.settings,
        )

    return _recorded(
        request,
        session,
        now,
        user,
        case.reference,
        attempt,
        open_event=f"reissue-{number.upper()}",
        values=values,
        done="reissued#documents",
    )


@router.post("/cases/{reference}/family-link")
def case_family_link_post(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    form: CheckedForm,
    reference: str,
) -> Response:
    """Send the family a new link to its page (the old one stops), or stop the link."""
    user = require_staff(signed_in, case_page=True)
    case: Case = _staff_case(session, signed_in, reference)[0]
    action = form_text(form, "action")
    settings: Settings = request.app.state.settings

    def attempt() -> None:
        actor = auth.actor_for(user, "web")
        if action == "stop":
            family.revoke_link(session, case.reference, now=now, actor=actor)
        else:
            family.issue_link(session, case.reference, now=now, actor=actor, settings=settings)

    return _recorded(
        request,
        session,
        now,
        user,
        case.reference,
        attempt,
        open_event="family_link",
        values={},
        done="family_link_stopped" if action == "stop" else "family_link_sent",
    )


@router.post("/cases/{reference}/reopen")
def case_reopen_post(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    form: CheckedForm,
    reference: str,
) -> Response:
    """A manager reopens a closed or withdrawn case; who may, and what comes back, is the
    use case's (an adviser who posts this is refused there, as at every door)."""
    user = require_staff(signed_in, case_page=True)
    case: Case = _staff_case(session, signed_in, reference)[0]
    values: dict[str, Any] = {"reason": form_text(form, "reason")}

    def attempt() -> None:
        cases.reopen_case(
            session,
            case.reference,
            reason=values["reason"],
            now=now,
            actor=auth.actor_for(user, "web"),
            expected_version=form_version(form),
        )

    return _recorded(
        request,
        session,
        now,
        user,
        case.reference,
        attempt,
        open_event="reopen",
        values=values,
        done="reopened",
    )
