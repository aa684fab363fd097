"""The adviser's pages, sign-in and sign-out, and the manager's page.

Server-rendered GOV.UK Design System pages that work without JavaScript. Each
handler is an edge in the sense of ``design.md``: it parses the form, picks ``now``
(``NowDep``, pinned in tests), calls one use case in ``services`` and renders the
result. Refusals from the services (``CaseworkError``) come back as the same page
with the message beside the field or in a banner, never as a 500.

Reach: advisers, managers and admins use these pages; provider staff are sent to
the portal (:mod:`casework.web.portal`) and get 404 on any case URL here, so a
reference they were not given is not confirmed to exist.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import func, select
from sqlmodel import Session, col
from starlette.datastructures import FormData
from starlette.staticfiles import StaticFiles

from casework import allocation, auth
from casework import deadlines as dl
from casework import services as svc
from casework.cli_users import user_for_set_password_token
from casework.config import Settings
from casework.contacts import display_phone
from casework.models import (
    Allocation,
    Case,
    CaseEvent,
    Deadline,
    DeadlineStatus,
    Notice,
    Person,
    Provider,
    Role,
    User,
    UserSession,
)
from casework.states import EVENT_LABELS, FINAL_STATES, CaseKind, CaseState, EventField
from casework.web import assets
from casework.web.deps import SESSION_COOKIE, NotSignedIn, NowDep, PageUserDep, SessionDep
from casework.web.security import (
    CSRF_FIELD,
    SIGN_IN_CSRF_COOKIE,
    CheckedForm,
    CsrfFailed,
    SecurityHeadersMiddleware,
    SignInForm,
    cookie_secure,
    new_csrf_token,
    tokens_match,
)

router = APIRouter(include_in_schema=False)

STAFF_ROLES = frozenset({Role.adviser, Role.manager, Role.admin})
MANAGER_ROLES = frozenset({Role.manager, Role.admin})
PAGE_SIZE = 25
AT_RISK_WORKING_DAYS = 3
MANAGER_LIMIT = 500
VIEW_EVENT = "viewed"

# --- Words people read ------------------------------------------------------------------

STATE_LABELS: dict[str, str] = {
    CaseState.requested: "Requested",
    CaseState.advised: "Advised",
    CaseState.mediating: "Mediating",
    CaseState.declined: "Declined mediation",
    CaseState.certificate_issued: "Certificate issued",
    CaseState.appeal_ready: "Appeal ready",
    CaseState.allocated: "Allocated",
    CaseState.meeting_held: "Meeting held",
    CaseState.closed: "Closed",
    CaseState.withdrawn: "Withdrawn",
}
STATE_COLOURS: dict[str, str] = {
    CaseState.requested: "purple",
    CaseState.advised: "turquoise",
    CaseState.mediating: "teal",
    CaseState.allocated: "teal",
    CaseState.declined: "pink",
    CaseState.meeting_held: "magenta",
    CaseState.certificate_issued: "yellow",
    CaseState.appeal_ready: "green",
    CaseState.closed: "grey",
    CaseState.withdrawn: "grey",
}
STATUS_COLOURS: dict[str, str] = {
    "open": "turquoise",
    "met": "green",
    "missed": "red",
    "cancelled": "grey",
    "queued": "grey",
    "sending": "turquoise",
    "sent": "teal",
    "delivered": "green",
    "failed": "red",
    "skipped": "grey",
    "offered": "yellow",
    "accepted": "green",
    "declined": "red",
    "ended": "grey",
}
DEADLINE_LABELS: dict[str, str] = {
    "contact_adviser": "Family contacts the mediation adviser",
    "certificate_after_decline": "Certificate after the family declined mediation",
    "icb_notified": "LA tells the ICB (health care in issue)",
    "mediation_meeting": "Mediation meeting held",
    "certificate_not_arranged": "Certificate: LA could not arrange mediation",
    "certificate_after_meeting": "Certificate after the meeting",
    "agreement_implemented": "LA carries out what was agreed",
    "icb_tells_la_of_agreement": "ICB tells the LA of the agreement",
    "appeal": "Appeal reaches the Tribunal",
    "scheduled_meeting": "Scheduled meeting",
    "dr_advice": "Advice given (service target)",
    "dr_allocation": "Provider allocated (service target)",
    "dr_meeting": "Meeting held (service target)",
    "allocation_acceptance": "Provider accepts the allocation",
}
DECISION_TYPE_LABELS: dict[str, str] = {
    "refuse_assessment": "Not to carry out an EHC needs assessment",
    "refuse_plan": "Not to draw up an EHC plan",
    "plan_contents": "The contents of a final or amended EHC plan",
    "refuse_amend": "Not to amend an EHC plan",
    "cease_plan": "To stop maintaining an EHC plan",
}
CHOICE_LABELS: dict[str, str] = {
    "agreement": "Agreement reached",
    "partial": "Partial agreement",
    "none": "No agreement",
    "mediation_held": "Mediation took place",
    "not_arranged": "LA could not arrange mediation within 30 days",
    "declined": "Family declined mediation",
    "appeal_lodged": "Family lodged an appeal",
    "no_appeal": "Family decided not to appeal",
    "window_ended": "The appeal window ended",
    "resolved": "Resolved",
    "partly_resolved": "Partly resolved",
    "not_resolved": "Not resolved",
}
OTHER_EVENT_LABELS: dict[str, str] = {
    "open": "Case opened",
    "allocate_provider": "Provider allocated",
    "accept_allocation": "Provider accepted the allocation",
    "decline_allocation": "Provider declined the allocation",
    "update": "Case details corrected",
    "acknowledge_escalation": "Escalation acknowledged",
    VIEW_EVENT: "Case viewed",
}
KIND_LABELS = {CaseKind.mediation: "Mediation", CaseKind.disagreement: "Disagreement resolution"}
DONE_MESSAGES: dict[str, str] = {
    "opened": "Case opened. Its clocks have started and the family will be told.",
    "allocated": "Provider allocated. They have been asked to accept.",
    "facts": "Case details updated.",
    "accepted": "Allocation accepted.",
    "declined": "Allocation declined. The case has gone back to the adviser.",
    "acknowledged": "Escalation acknowledged.",
    "password": "Password set. You can now sign in.",
}


def event_label(event: str) -> str:
    return EVENT_LABELS.get(event) or OTHER_EVENT_LABELS.get(event) or event.replace("_", " ")


def choice_options(choices: Iterable[str]) -> list[tuple[str, str]]:
    return [(c, CHOICE_LABELS.get(c, c.replace("_", " "))) for c in choices]


def fmt_date(value: dt.date | None) -> str:
    return dl.fmt(value) if value else ""


def fmt_datetime(value: dt.datetime | None) -> str:
    """A stored UTC instant as London wall-clock time: '27 November 2026, 10:05'."""
    if value is None:
        return ""
    local = value.astimezone(dl.LONDON)
    return f"{local.day} {local:%B %Y, %H:%M}"


# --- Deadlines: red / amber / green --------------------------------------------------


@dataclass(frozen=True)
class RagStatus:
    """How urgent a deadline is: red overdue, amber within 3 working days, green later."""

    colour: str
    label: str
    countdown: str


def rag_for(deadline: Deadline, now: dt.datetime) -> RagStatus | None:
    """The RAG status of an open deadline (None for met, missed-and-closed or cancelled)."""
    if deadline.status != DeadlineStatus.open:
        return None
    today = dl.local_date(now)
    days = (deadline.due_date - today).days
    if deadline.due_at <= now:
        late = -days
        text = (
            "overdue since today"
            if late <= 0
            else f"overdue by {late} day{'s' if late != 1 else ''}"
        )
        return RagStatus("red", "Overdue", text)
    working = dl.working_days_between(today, deadline.due_date)
    if days == 0:
        text = "due today"
    else:
        text = (
            f"{days} day{'s' if days != 1 else ''} left"
            f" ({working} working day{'s' if working != 1 else ''})"
        )
    if deadline.due_date <= dl.add_working_days(today, AT_RISK_WORKING_DAYS):
        return RagStatus("orange", "Due soon", text)
    return RagStatus("green", "On track", text)


# --- Rendering ---------------------------------------------------------------------------

_env = Environment(
    loader=FileSystemLoader(str(assets.WEB_DIR / "templates")),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.globals.update(
    state_labels=STATE_LABELS,
    state_colours=STATE_COLOURS,
    status_colours=STATUS_COLOURS,
    deadline_labels=DEADLINE_LABELS,
    decision_type_labels=DECISION_TYPE_LABELS,
    kind_labels=KIND_LABELS,
    choice_options=choice_options,
    choice_labels=CHOICE_LABELS,
    event_label=event_label,
    fmt_date=fmt_date,
    fmt_datetime=fmt_datetime,
    display_phone=display_phone,
)


@dataclass
class NavItem:
    text: str
    href: str
    active: bool = False


def _nav_for(user: User | None, path: str) -> list[NavItem]:
    if user is None:
        return []
    if user.role == Role.provider:
        items = [NavItem("Our cases", "/portal")]
    elif user.role == Role.commissioner:
        items = [NavItem("Reports", "/reports")]
    else:
        items = [NavItem("Cases", "/"), NavItem("New case", "/cases/new")]
        if user.role in MANAGER_ROLES:
            items.append(NavItem("Late and at risk", "/manager"))
            items.append(NavItem("Reports", "/reports"))
    best = max(
        (i for i in items if path == i.href or (i.href != "/" and path.startswith(i.href))),
        key=lambda i: len(i.href),
        default=None,
    )
    if best is None and path.startswith("/cases/") and user.role != Role.provider:
        best = items[0]
    if best is not None:
        best.active = True
    return items


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    """Render a page with the layout's context: who is signed in, the CSRF token, the nav."""
    settings: Settings = request.app.state.settings
    user: User | None = getattr(request.state, "user", None)
    provider_name = getattr(request.state, "provider_name", None)
    values: dict[str, Any] = {
        "request": request,
        "service_name": settings.service.name,
        "service_area": settings.service.area,
        "helpline": settings.service.helpline,
        "current_user": user,
        "provider_name": provider_name,
        "csrf_token": getattr(request.state, "csrf_token", ""),
        "nav_items": _nav_for(user, request.url.path),
        "home_url": _home_for(user) if user is not None else "/",
        "errors": {},
    }
    values.update(context or {})
    html = _env.get_template(template).render(values)
    return HTMLResponse(html, status_code=status_code)


class PageError(Exception):
    """A page-level refusal rendered as a GOV.UK error page with this status."""

    def __init__(self, status_code: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.title = title
        self.message = message


def not_found(what: str = "case") -> PageError:
    return PageError(
        404,
        "Page not found",
        f"There is no {what} at this address. Check the reference, or go back to your list.",
    )


def require_staff(signed_in: tuple[User, UserSession], *, case_page: bool = False) -> User:
    """Advisers, managers and admins; provider staff get 404 on case URLs, 403 elsewhere."""
    user = signed_in[0]
    if user.role in STAFF_ROLES:
        return user
    if case_page:
        raise not_found()
    raise PageError(
        403,
        "You cannot use this page",
        "This page is for IAS advisers. Provider staff use the provider portal.",
    )


def redirect(url: str) -> RedirectResponse:
    """303 See Other: the browser follows with a GET (post/redirect/get)."""
    return RedirectResponse(url, status_code=303)


def safe_next(value: str | None) -> str | None:
    """Only same-site paths: never another host (open redirect)."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return None
    return value


# --- Form parsing ---------------------------------------------------------------------


def form_text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def date_parts(form: FormData, name: str) -> dict[str, str]:
    return {part: form_text(form, f"{name}-{part}") for part in ("day", "month", "year")}


def date_from_parts(parts: Mapping[str, str], name: str, label: str) -> dt.date | None:
    """A GOV.UK three-field date, or None when all three are blank."""
    if not any(parts.values()):
        return None
    try:
        day, month, year = (int(parts[p]) for p in ("day", "month", "year"))
        if year < 1900:
            raise ValueError("year")
        return dt.date(year, month, day)
    except (ValueError, KeyError):
        raise svc.ValidationFailed(
            f"{label} must be a real date, for example 27 3 2026", field=name
        ) from None


def event_form_values(
    form: FormData, fields: Sequence[EventField], typed: dict[str, Any]
) -> dict[str, str]:
    """Raw strings for ``services.parse_event_data``; fills ``typed`` for re-display.

    ``typed`` (what was typed) is filled before anything can be refused, so a
    refused form comes back with every value. Dates come as three fields and are
    joined here; everything else is passed as typed so the service's own validation
    names the field and the fix.
    """
    for f in fields:
        if f.type == "date":
            typed[f.name + "_parts"] = date_parts(form, f.name)
        else:
            typed[f.name] = form_text(form, f.name)
    raw: dict[str, str] = {}
    for f in fields:
        if f.type == "date":
            label = f.name.replace("_", " ").capitalize()
            day = date_from_parts(typed[f.name + "_parts"], f.name, label)
            raw[f.name] = day.isoformat() if day else ""
        else:
            raw[f.name] = typed[f.name]
    return raw


def form_version(form: FormData) -> int | None:
    try:
        return int(form_text(form, "version"))
    except ValueError:
        return None


# --- Case views (shared with the portal) --------------------------------------------------


@dataclass
class DeadlineRow:
    deadline: Deadline
    label: str
    rag: RagStatus | None


@dataclass
class TimelineEntry:
    at: dt.datetime
    title: str
    who: str = ""
    channel: str = ""
    detail: list[tuple[str, str]] = field(default_factory=list)
    note: str = ""
    status: str = ""
    change: str = ""


@dataclass
class CaseView:
    """Everything the case page shows, loaded in a handful of indexed queries."""

    case: Case
    family: Person | None
    provider: Provider | None
    allocation: Allocation | None
    allocation_provider: Provider | None
    deadlines: list[DeadlineRow]
    timeline: list[TimelineEntry]
    views: list[CaseEvent]
    view_count: int
    actions: list[tuple[str, str, tuple[EventField, ...]]]


def load_case(session: Session, reference: str) -> tuple[Case, Person | None] | None:
    row = session.execute(
        select(Case, Person)
        .outerjoin(Person, (col(Person.case_id) == Case.id) & (col(Person.role) == "family"))
        .where(col(Case.reference) == reference.strip().upper())
    ).first()
    return None if row is None else (row[0], row[1])


def record_view(session: Session, case: Case, user: User, now: dt.datetime, channel: str) -> None:
    """Every look at a child's case is in its audit trail (who, when, through which door).

    A separate row per view, not a counter, because the trail must say who looked;
    the page shows views collapsed so the timeline does not drown in them.

    The page's reads are committed first, so the write starts its own transaction:
    on SQLite a read transaction that later writes is refused outright (not queued)
    when another request wrote in between.
    """
    session.commit()
    session.add(
        CaseEvent(
            case_id=case.id,  # type: ignore[arg-type]
            at=now,
            actor=auth.actor_for(user, channel).id,
            event=VIEW_EVENT,
            from_state=case.state,
            to_state=case.state,
            data={},
            channel=channel,
            note="",
        )
    )
    session.commit()


def _event_detail(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    out = []
    for key, value in data.items():
        if key == "note" or value in (None, "", False):
            continue
        if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            value = fmt_date(dt.date.fromisoformat(value))
        elif value is True:
            value = "yes"
        elif isinstance(value, str):
            value = CHOICE_LABELS.get(value, DECISION_TYPE_LABELS.get(value, value))
        out.append((key.replace("_", " ").capitalize(), str(value)))
    return out


def _event_entry(e: CaseEvent) -> TimelineEntry:
    change = ""
    if e.from_state and e.to_state and e.from_state != e.to_state:
        change = (
            f"{STATE_LABELS.get(e.from_state, e.from_state)} → "
            f"{STATE_LABELS.get(e.to_state, e.to_state)}"
        )
    return TimelineEntry(
        at=e.at,
        title=event_label(e.event),
        who=e.actor,
        channel=e.channel,
        detail=_event_detail(e.data or {}),
        note=e.note,
        change=change,
    )


def _notice_entry(n: Notice) -> TimelineEntry:
    detail = [("To", f"{n.recipient_role} by {n.channel}")]
    if n.sent_at:
        detail.append(("Sent", fmt_datetime(n.sent_at)))
    if n.delivered_at:
        detail.append(("Delivered", fmt_datetime(n.delivered_at)))
    if n.status in ("failed",) and n.last_error:
        detail.append(("Problem", n.last_error[:200]))
    if n.not_before and n.status == "queued":
        detail.append(("Not before", fmt_datetime(n.not_before)))
    return TimelineEntry(
        at=n.created_at,
        title=f"Notice: {n.template.replace('_', ' ')}",
        detail=detail,
        status=n.status,
    )


def build_case_view(
    session: Session,
    case: Case,
    family: Person | None,
    now: dt.datetime,
    *,
    with_notices: bool = True,
    events: Iterable[str] | None = None,
) -> CaseView:
    """Load the case page: allocation, deadlines with RAG, timeline, views, next actions.

    ``events`` limits the offered actions (the portal offers only the provider's).
    """
    provider = session.get(Provider, case.provider_id) if case.provider_id else None
    allocation = svc.live_allocation(session, case)
    allocation_provider = (
        session.get(Provider, allocation.provider_id) if allocation is not None else None
    )
    deadlines = [
        DeadlineRow(d, DEADLINE_LABELS.get(d.kind, d.kind), rag_for(d, now))
        for d in svc.case_deadlines(session, case)
    ]
    # Open clocks first, soonest first; then the closed ones, latest first.
    deadlines.sort(
        key=lambda r: (
            r.deadline.status != DeadlineStatus.open,
            r.deadline.due_at if r.deadline.status == DeadlineStatus.open else dt.datetime.min,
        )
    )
    history = list(
        session.execute(
            select(CaseEvent)
            .where(col(CaseEvent.case_id) == case.id, col(CaseEvent.event) != VIEW_EVENT)
            .order_by(col(CaseEvent.id))
        ).scalars()
    )
    timeline = [_event_entry(e) for e in history]
    if with_notices:
        notices = session.execute(
            select(Notice).where(col(Notice.case_id) == case.id).order_by(col(Notice.created_at))
        ).scalars()
        timeline += [_notice_entry(n) for n in notices]
    timeline.sort(key=lambda t: t.at, reverse=True)
    view_count = int(
        session.execute(
            select(func.count())
            .select_from(CaseEvent)
            .where(col(CaseEvent.case_id) == case.id, col(CaseEvent.event) == VIEW_EVENT)
        ).scalar_one()
    )
    views = list(
        session.execute(
            select(CaseEvent)
            .where(col(CaseEvent.case_id) == case.id, col(CaseEvent.event) == VIEW_EVENT)
            .order_by(col(CaseEvent.id).desc())
            .limit(10)
        ).scalars()
    )
    wanted = set(events) if events is not None else None
    actions = [
        (event, EVENT_LABELS.get(event, event), fields)
        for event, fields in svc.allowed_events(case)
        if wanted is None or event in wanted
    ]
    return CaseView(
        case=case,
        family=family,
        provider=provider,
        allocation=allocation,
        allocation_provider=allocation_provider,
        deadlines=deadlines,
        timeline=timeline,
        views=views,
        view_count=view_count,
        actions=actions,
    )


def can_allocate(case: Case) -> bool:
    if case.state in FINAL_STATES:
        return False
    return not (
        case.kind == CaseKind.mediation
        and case.state in (CaseState.declined, CaseState.certificate_issued, CaseState.appeal_ready)
    )


# --- Sign-in, sign-out, set password --------------------------------------------------------


def _signed_in_user(request: Request, session: Session, now: dt.datetime) -> User | None:
    resolved = auth.resolve_session(session, request.cookies.get(SESSION_COOKIE), now=now)
    return resolved[0] if resolved else None


def _home_for(user: User) -> str:
    if user.role == Role.commissioner:
        return "/reports"
    return "/portal" if user.role == Role.provider else "/"


def _sign_in_page(
    request: Request,
    *,
    email: str = "",
    next_url: str | None = None,
    errors: dict[str, str] | None = None,
    message: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    token = request.cookies.get(SIGN_IN_CSRF_COOKIE) or new_csrf_token()
    response = render(
        request,
        "sign_in.html",
        {
            "page_title": "Sign in",
            "email": email,
            "next": next_url or "",
            "errors": errors or {},
            "message": message,
            "signin_csrf": token,
        },
        status_code=status_code,
    )
    settings: Settings = request.app.state.settings
    response.set_cookie(
        SIGN_IN_CSRF_COOKIE,
        token,
        httponly=True,
        secure=cookie_secure(settings),
        samesite="strict",
        path="/sign-in",
    )
    return response


@router.get("/sign-in")
def sign_in_get(
    request: Request,
    session: SessionDep,
    now: NowDep,
    next: str | None = None,
    expired: int = 0,
    signed_out: int = 0,
    done: str | None = None,
) -> Response:
    user = _signed_in_user(request, session, now)
    if user is not None:
        return redirect(safe_next(next) or _home_for(user))
    message = ""
    if expired:
        message = "Your session has ended. Sign in again to carry on."
    elif signed_out:
        message = "You have signed out."
    elif done in DONE_MESSAGES:
        message = DONE_MESSAGES[done]
    return _sign_in_page(request, next_url=safe_next(next), message=message)


@router.post("/sign-in")
def sign_in_post(request: Request, session: SessionDep, now: NowDep, form: SignInForm) -> Response:
    email = form_text(form, "email")
    password = form.get("password")
    password = password if isinstance(password, str) else ""
    next_url = safe_next(form_text(form, "next"))
    errors: dict[str, str] = {}
    if not email:
        errors["email"] = "Enter your email address"
    if not password:
        errors["password"] = "Enter your password"
    if errors:
        return _sign_in_page(
            request, email=email, next_url=next_url, errors=errors, status_code=422
        )
    try:
        user = auth.authenticate(session, email, password, now=now)
    except auth.SignInFailed as exc:
        return _sign_in_page(
            request,
            email=email,
            next_url=next_url,
            errors={"email": str(exc)},
            status_code=429 if exc.locked else 401,
        )
    auth.end_session(session, request.cookies.get(SESSION_COOKIE), now=now)
    handle = auth.start_session(session, user, now=now)
    if next_url and user.role == Role.provider and not next_url.startswith("/portal"):
        next_url = None
    response = redirect(next_url or _home_for(user))
    settings: Settings = request.app.state.settings
    response.set_cookie(
        SESSION_COOKIE,
        handle.token,
        httponly=True,
        secure=cookie_secure(settings),
        samesite="lax",
        path="/",
    )
    response.delete_cookie(SIGN_IN_CSRF_COOKIE, path="/sign-in")
    return response


@router.post("/sign-out")
def sign_out(request: Request, session: SessionDep, now: NowDep, form: CheckedForm) -> Response:
    auth.end_session(session, request.cookies.get(SESSION_COOKIE), now=now)
    response = redirect("/sign-in?signed_out=1")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _set_password_csrf(settings: Settings, token: str) -> str:
    """A CSRF value bound to the one-time token: the page has no session yet."""
    return hmac.new(
        settings.secret_key.encode(), f"set-password:{token}".encode(), hashlib.sha256
    ).hexdigest()


async def _set_password_form(request: Request, token: str) -> FormData:
    form = await request.form()
    settings: Settings = request.app.state.settings
    if not tokens_match(_set_password_csrf(settings, token), form.get(CSRF_FIELD)):
        raise CsrfFailed()
    return form


def _set_password_user(session: Session, settings: Settings, token: str) -> User:
    user = user_for_set_password_token(session, settings, token)
    if user is None:
        raise PageError(
            404,
            "This link has expired",
            "This link has been used or has expired. Ask an administrator for a new one.",
        )
    return user


@router.get("/set-password/{token}")
def set_password_get(request: Request, session: SessionDep, token: str) -> Response:
    settings: Settings = request.app.state.settings
    user = _set_password_user(session, settings, token)
    request.state.csrf_token = _set_password_csrf(settings, token)
    return render(
        request,
        "set_password.html",
        {"page_title": "Set your password", "email": user.email, "token": token},
    )


@router.post("/set-password/{token}")
def set_password_post(
    request: Request,
    session: SessionDep,
    token: str,
    form: Annotated[FormData, Depends(_set_password_form)],
) -> Response:
    settings: Settings = request.app.state.settings
    user = _set_password_user(session, settings, token)
    password = form_text(form, "password")
    errors: dict[str, str] = {}
    if password != form_text(form, "confirm"):
        errors["confirm"] = "The passwords do not match: type the same password twice"
    else:
        try:
            auth.set_password(session, user, password)
        except svc.ValidationFailed as exc:
            errors["password"] = str(exc).removeprefix("password: ").capitalize()
    if errors:
        session.rollback()
        request.state.csrf_token = _set_password_csrf(settings, token)
        return render(
            request,
            "set_password.html",
            {
                "page_title": "Set your password",
                "email": user.email,
                "token": token,
                "errors": errors,
            },
            status_code=422,
        )
    return redirect("/sign-in?done=password")


# --- Dashboard -----------------------------------------------------------------------------

OPEN_STATES = [s.value for s in CaseState if s not in FINAL_STATES]
_REFERENCE_LIKE = re.compile(r"^[A-Za-z]{1,10}-\d[\d-]*$")


@dataclass
class DashboardRow:
    case: Case
    family_name: str
    provider_name: str
    deadline: Deadline | None
    deadline_label: str
    rag: RagStatus | None


def next_deadlines(session: Session, case_ids: Sequence[int]) -> dict[int, Deadline]:
    """The soonest open deadline of each case, in ONE query for the whole page."""
    if not case_ids:
        return {}
    rows = session.execute(
        select(Deadline)
        .where(col(Deadline.case_id).in_(case_ids), col(Deadline.status) == DeadlineStatus.open)
        .order_by(col(Deadline.case_id), col(Deadline.due_at))
    ).scalars()
    soonest: dict[int, Deadline] = {}
    for d in rows:
        soonest.setdefault(d.case_id, d)
    return soonest


COUNTS_TTL_SECONDS = 15.0


def state_counts(app: Any, session: Session) -> dict[str, int]:
    """Cases per state, recounted at most every 15 seconds per app.

    Counting 100,000 cases by state costs tens of milliseconds on SQLite; the list
    itself is always live, and a count a few seconds old is fine for the sidebar.
    Changes made through these pages drop the cache (:func:`forget_counts`).
    """
    cached: tuple[float, dict[str, int]] | None = getattr(app.state, "state_counts", None)
    moment = time.monotonic()
    if cached is not None and cached[0] > moment:
        return cached[1]
    counts = {
        str(s): int(n)
        for s, n in session.execute(
            select(col(Case.state), func.count()).group_by(col(Case.state))
        ).all()
    }
    app.state.state_counts = (moment + COUNTS_TTL_SECONDS, counts)
    return counts


def forget_counts(request: Request) -> None:
    """Drop the cached counts after a change made here, so the adviser sees it at once."""
    request.app.state.state_counts = None


def provider_names(session: Session) -> dict[int, str]:
    return {p.id: p.name for p in session.execute(select(Provider)).scalars() if p.id is not None}


@router.get("/")
def dashboard(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    state: str = "",
    q: str = "",
    page: int = 1,
) -> Response:
    user = signed_in[0]
    if user.role == Role.provider:
        return redirect("/portal")
    require_staff(signed_in)
    state = state.strip()
    q = q.strip()[:100]
    page = max(1, min(page, 10_000))
    if state and state not in CaseState.__members__:
        state = ""
    counts = state_counts(request.app, session)
    query = select(Case, col(Person.name)).outerjoin(
        Person, (col(Person.case_id) == Case.id) & (col(Person.role) == "family")
    )
    query = (
        query.where(col(Case.state) == state)
        if state
        else query.where(col(Case.state).in_(OPEN_STATES))
    )
    if q:
        if _REFERENCE_LIKE.match(q):
            # A reference: the unique index answers it.
            query = query.where(col(Case.reference).startswith(q.upper(), autoescape=True))
        else:
            # A name: filter the people first (one pass, no index can serve a
            # substring), then keep the cases whose family matched.
            matching = select(col(Person.case_id)).where(
                col(Person.role) == "family",
                func.lower(Person.name).contains(q.lower(), autoescape=True),
            )
            query = query.where(col(Case.id).in_(matching))
    rows = session.execute(
        query.order_by(col(Case.id).desc()).limit(PAGE_SIZE + 1).offset((page - 1) * PAGE_SIZE)
    ).all()
    has_next = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    soonest = next_deadlines(session, [c.id for c, _ in rows if c.id is not None])
    names = provider_names(session)
    table = []
    for case, family_name in rows:
        d = soonest.get(case.id) if case.id is not None else None
        table.append(
            DashboardRow(
                case=case,
                family_name=family_name or "",
                provider_name=names.get(case.provider_id, "") if case.provider_id else "",
                deadline=d,
                deadline_label=DEADLINE_LABELS.get(d.kind, d.kind) if d else "",
                rag=rag_for(d, now) if d else None,
            )
        )
    if q:
        total = None
    elif state:
        total = counts.get(state, 0)
    else:
        total = sum(n for s, n in counts.items() if s in OPEN_STATES)
    pages = None if total is None else max(1, -(-total // PAGE_SIZE))

    def page_url(n: int) -> str:
        params = {k: v for k, v in (("state", state), ("q", q)) if v}
        if n > 1:
            params["page"] = str(n)
        return "/" + ("?" + urlencode(params) if params else "")

    return render(
        request,
        "dashboard.html",
        {
            "page_title": "Cases",
            "rows": table,
            "state": state,
            "q": q,
            "page": page,
            "pages": pages,
            "total": total,
            "has_next": has_next,
            "page_url": page_url,
            "counts": counts,
            "open_states": OPEN_STATES,
            "all_states": [s.value for s in CaseState],
            "open_total": sum(n for s, n in counts.items() if s in OPEN_STATES),
        },
    )


# --- Intake ----------------------------------------------------------------------------------

INTAKE_DEFAULTS: dict[str, Any] = {
    "kind": "mediation",
    "channel": "helpline",
    "preferred_channels": ["sms", "email"],
    "sms_consent": "yes",
    "health_care": "no",
    "placement_only": "no",
    "decision_date_parts": {},
}


def _yes(value: str) -> bool:
    return value == "yes"


@router.get("/cases/new")
def intake_get(request: Request, signed_in: PageUserDep) -> Response:
    require_staff(signed_in)
    return render(
        request,
        "case_new.html",
        {"page_title": "Open a case", "values": dict(INTAKE_DEFAULTS), "errors": {}},
    )


@router.post("/cases/new")
def intake_post(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    form: CheckedForm,
) -> Response:
    user = require_staff(signed_in)
    settings: Settings = request.app.state.settings
    values: dict[str, Any] = {
        name: form_text(form, name)
        for name in (
            "kind",
            "channel",
            "name",
            "phone",
            "email",
            "child_name",
            "decision_type",
            "sms_consent",
            "health_care",
            "placement_only",
            "summary",
        )
    }
    values["preferred_channels"] = [
        c for c in form.getlist("preferred_channels") if isinstance(c, str)
    ]
    values["decision_date_parts"] = date_parts(form, "decision_date")
    errors: dict[str, str] = {}
    decision_date = None
    try:
        decision_date = date_from_parts(
            values["decision_date_parts"], "decision_date", "The decision date"
        )
    except svc.ValidationFailed as exc:
        errors["decision_date"] = str(exc)
    if not errors:
        intake = svc.Intake(
            kind=values["kind"],
            name=values["name"],
            phone=values["phone"],
            channel=values["channel"],
            email=values["email"],
            decision_date=decision_date,
            decision_type=values["decision_type"] or None,
            health_care=_yes(values["health_care"]),
            placement_only=_yes(values["placement_only"]),
            summary=values["summary"],
            child_name=values["child_name"],
            preferred_channels=",".join(values["preferred_channels"]),
            sms_consent=_yes(values["sms_consent"]),
        )
        try:
            case = svc.open_case(
                session, intake, now=now, actor=auth.actor_for(user, "web"), settings=settings
            )
        except svc.ValidationFailed as exc:
            errors[exc.field or "_form"] = str(exc)
        else:
            forget_counts(request)
            return redirect(f"/cases/{quote(case.reference)}?done=opened")
    return render(
        request,
        "case_new.html",
        {"page_title": "Open a case", "values": values, "errors": errors},
        status_code=422,
    )


# --- The case page -----------------------------------------------------------------------------


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
) -> HTMLResponse:
    """The adviser's case page, optionally re-rendered with one form's errors."""
    found = load_case(session, reference)
    if found is None:
        raise not_found()
    case, family = found
    if record:
        record_view(session, case, user, now, "web")
    view = build_case_view(session, case, family, now)
    done_message = ""
    if done in DONE_MESSAGES:
        done_message = DONE_MESSAGES[done]
    elif done in EVENT_LABELS:
        done_message = f"{EVENT_LABELS[done]}: recorded."
    return render(
        request,
        "case.html",
        {
            "page_title": f"{case.reference}",
            "view": view,
            "can_allocate": can_allocate(case),
            "is_final": case.state in FINAL_STATES,
            "errors": errors or {},
            "open_event": open_event,
            "values": values or {},
            "banner": banner,
            "banner_title": banner_title,
            "done_message": done_message,
            "decision_types": list(DECISION_TYPE_LABELS.items()),
        },
        status_code=status_code,
    )


@router.get("/cases/{reference}")
def case_get(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    reference: str,
    done: str = "",
) -> Response:
    user = require_staff(signed_in, case_page=True)
    return case_page(request, session, user, now, reference, done=done, record=True)


def refusal_page(
    request: Request,
    session: Session,
    user: User,
    now: dt.datetime,
    reference: str,
    exc: svc.CaseworkError,
    *,
    open_event: str | None = None,
    values: dict[str, Any] | None = None,
    render_case: Any = None,
) -> HTMLResponse:
    """Turn a refusal from a use case into the same page with the message where it belongs."""
    render_case = render_case or case_page
    if isinstance(exc, svc.NotFound):
        raise not_found()
    if isinstance(exc, svc.ValidationFailed):
        return render_case(
            request,
            session,
            user,
            now,
            reference,
            status_code=422,
            errors={exc.field or "_form": str(exc)},
            open_event=open_event,
            values=values,
        )
    if isinstance(exc, svc.Conflict):
        return render_case(
            request,
            session,
            user,
            now,
            reference,
            status_code=409,
            banner=(
                f"Someone else changed this case while you were looking at it. {exc} "
                "Nothing you entered was saved: check the case below and try again."
            ),
            banner_title="Someone else changed this case",
        )
    return render_case(
        request,
        session,
        user,
        now,
        reference,
        status_code=exc.http_status,
        banner=str(exc),
        banner_title="That cannot be done now",
    )


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
    settings: Settings = request.app.state.settings
    found = _staff_case(session, signed_in, reference)
    case: Case = found[0]
    fields = dict(svc.allowed_events(case)).get(event)
    typed: dict[str, Any] = {}
    try:
        if fields is None:
            # Not offered now: the version check first, so a stale form says "changed".
            version = form_version(form)
            if version is not None and version != case.version:
                raise svc.Conflict(f"{case.reference} is now {STATE_LABELS.get(case.state)}.")
            raise svc.describe_refusal(case, event)
        raw = event_form_values(form, fields, typed)
        svc.advance(
            session,
            case.reference,
            event,
            now=now,
            actor=auth.actor_for(user, "web"),
            settings=settings,
            data=raw,
            expected_version=form_version(form),
        )
    except svc.CaseworkError as exc:
        session.rollback()
        return refusal_page(
            request, session, user, now, reference, exc, open_event=event, values=typed
        )
    forget_counts(request)
    return redirect(f"/cases/{quote(case.reference)}?done={quote(event)}")


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
    if can_allocate(case):
        try:
            suggestion = allocation.suggest(session, case, settings)
        except svc.CaseworkError:
            suggestion = None
    current = svc.live_allocation(session, case)
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
            "can_allocate": can_allocate(case),
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
        version = form_version(form)
        if version is not None and version != case.version:
            raise svc.Conflict(f"{case.reference} is now {STATE_LABELS.get(case.state)}.")
        if not values["provider"]:
            raise svc.ValidationFailed("Choose the provider to allocate", field="provider")
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
        )
    except svc.CaseworkError as exc:
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
        "decision_type": form_text(form, "decision_type"),
        "note": form_text(form, "note"),
        "decision_date_parts": date_parts(form, "decision_date"),
    }
    try:
        version = form_version(form)
        if version is not None and version != case.version:
            raise svc.Conflict(f"{case.reference} is now {STATE_LABELS.get(case.state)}.")
        decision_date = date_from_parts(
            values["decision_date_parts"], "decision_date", "The decision date"
        )
        decision_type = values["decision_type"] or None
        if decision_type == case.decision_type:
            decision_type = None
        svc.update_case_facts(
            session,
            case.reference,
            now=now,
            actor=auth.actor_for(user, "web"),
            settings=settings,
            decision_date=decision_date,
            decision_type=decision_type,
            note=values["note"],
        )
    except svc.CaseworkError as exc:
        session.rollback()
        return refusal_page(
            request, session, user, now, reference, exc, open_event="facts", values=values
        )
    return redirect(f"/cases/{quote(case.reference)}?done=facts")


# --- Manager ------------------------------------------------------------------------------------


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
    horizon = dl.add_working_days(today, AT_RISK_WORKING_DAYS)
    rows = session.execute(
        select(Deadline, col(Case.reference), col(Case.state), col(Provider.name))
        .join(Case, col(Case.id) == Deadline.case_id)
        .outerjoin(Provider, col(Provider.id) == Case.provider_id)
        .where(col(Deadline.status) == DeadlineStatus.open, col(Deadline.due_date) <= horizon)
        .order_by(col(Deadline.due_at))
        .limit(MANAGER_LIMIT + 1)
    ).all()
    risks = [
        RiskRow(d, ref, state, pname or "", DEADLINE_LABELS.get(d.kind, d.kind), rag_for(d, now))
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
    notice = session.execute(
        select(Notice).where(col(Notice.public_id) == public_id)
    ).scalar_one_or_none()
    if notice is None or not notice.template.startswith("escalation"):
        raise not_found("escalation")
    if notice.acknowledged_at is None:
        actor = auth.actor_for(user, "web")
        notice.acknowledged_at = now
        notice.acknowledged_by = actor.id
        if notice.case_id is not None:
            case = session.get(Case, notice.case_id)
            session.add(
                CaseEvent(
                    case_id=notice.case_id,
                    at=now,
                    actor=actor.id,
                    event="acknowledge_escalation",
                    from_state=case.state if case else None,
                    to_state=case.state if case else None,
                    data={"notice": notice.public_id, "template": notice.template},
                    channel="web",
                    note=form_text(form, "note"),
                )
            )
        session.commit()
    return redirect("/manager?done=acknowledged")


# --- Wiring -------------------------------------------------------------------------------------


class OptionalStaticFiles(StaticFiles):
    """Static files whose folder may not exist yet (assets not installed): 404, not 500."""

    async def check_config(self) -> None:
        if self.directory is not None and not Path(self.directory).is_dir():
            return
        await super().check_config()


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def install(app: FastAPI) -> None:
    """Add the pages, the portal, the assets, the error pages and the security headers."""
    from casework.web import portal

    settings: Settings = app.state.settings
    if settings.environment != "test":
        warning = assets.ensure_assets(quiet=True)
        if warning:
            import logging

            logging.getLogger(__name__).warning(warning)
            print(f"warning: {warning}")

    app.include_router(router)
    app.include_router(portal.router)
    # /assets/govuk/... is the package's dist (CSS, JS); /assets/... its fonts and images,
    # which is where the compiled CSS looks for them.
    app.mount(
        "/assets/govuk",
        OptionalStaticFiles(directory=assets.GOVUK_DIST, check_dir=False),
        name="govuk",
    )
    app.mount(
        "/assets",
        OptionalStaticFiles(directory=assets.GOVUK_DIST / "assets", check_dir=False),
        name="assets",
    )
    app.mount("/static", StaticFiles(directory=assets.STATIC_DIR), name="static")

    @app.exception_handler(NotSignedIn)
    async def _not_signed_in(request: Request, exc: NotSignedIn) -> Response:
        target = request.url.path
        if request.url.query and request.method == "GET":
            target += "?" + request.url.query
        params = {"next": target}
        if request.cookies.get(SESSION_COOKIE):
            params["expired"] = "1"
        response = redirect("/sign-in?" + urlencode(params))
        if request.cookies.get(SESSION_COOKIE):
            response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.exception_handler(CsrfFailed)
    async def _csrf_failed(request: Request, exc: CsrfFailed) -> Response:
        return render(
            request,
            "error.html",
            {
                "page_title": "This form could not be sent",
                "message": (
                    "The form was out of date or did not come from this service, so nothing"
                    " was changed. Go back, reload the page and try again."
                ),
            },
            status_code=403,
        )

    @app.exception_handler(PageError)
    async def _page_error(request: Request, exc: PageError) -> Response:
        return render(
            request,
            "error.html",
            {"page_title": exc.title, "message": exc.message},
            status_code=exc.status_code,
        )

    @app.exception_handler(svc.CaseworkError)
    async def _casework_error(request: Request, exc: svc.CaseworkError) -> Response:
        # Pages handle refusals where they happen; this is the safety net so a refusal
        # is never a 500. API paths get JSON with the same message.
        if _wants_json(request):
            return JSONResponse({"detail": str(exc)}, status_code=exc.http_status)
        return render(
            request,
            "error.html",
            {"page_title": "That cannot be done", "message": str(exc)},
            status_code=exc.http_status,
        )

    app.add_middleware(SecurityHeadersMiddleware)


__all__ = [
    "CaseView",
    "PageError",
    "RagStatus",
    "build_case_view",
    "install",
    "rag_for",
    "render",
    "router",
]
