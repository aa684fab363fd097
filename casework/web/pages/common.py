"""What every screen shares: rendering with the layout, the navigation, page errors,
form parsing, the red/amber/green of a deadline and the cached case counts.

Handlers are edges in the sense of ``design.md``: they parse the form, pick ``now``
(``NowDep``, pinned in tests), call one use case in ``services`` and render the result.
"""

from __future__ import annotations

import datetime as dt
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import func, select
from sqlmodel import Session, col
from starlette.datastructures import FormData

from casework import cases
from casework.cases import words
from casework.cases.fields import EventField
from casework.cases.words import actor_words, document_words, role_words, size_words
from casework.config import Settings
from casework.contacts import display_phone
from casework.models import Case, Deadline, Role, User, UserSession
from casework.web import assets
from casework.web.pages.fields import draw_fields, draw_kept
from casework.web.pages.labels import (
    CHOICE_LABELS,
    DEADLINE_LABELS,
    DECISION_TYPE_LABELS,
    KIND_LABELS,
    STATE_COLOURS,
    STATE_LABELS,
    STATUS_COLOURS,
    choice_options,
    event_label,
    fmt_date,
    fmt_datetime,
)

STAFF_ROLES = frozenset({Role.adviser, Role.manager, Role.admin})
MANAGER_ROLES = frozenset({Role.manager, Role.admin})


# --- Deadlines: red / amber / green --------------------------------------------------


@dataclass(frozen=True)
class RagStatus:
    """How urgent a deadline is: red overdue, amber within 3 working days, green later."""

    colour: str
    label: str
    countdown: str


def rag_for(deadline: Deadline, now: dt.datetime, settings: Settings) -> RagStatus | None:
    """The RAG status of a clock still due (None once done, cancelled or ended).

    The rule is :func:`casework.cases.clock_urgency`: a missed duty not yet done
    stays red on every page until it is done or the case moves on.
    """
    status = cases.clock_urgency(
        deadline,
        now,
        calendars=settings.calendars,
        soon_days=settings.due_soon_service_days,
    )
    if status is None:
        return None
    return RagStatus(status.colour, status.label, status.countdown)


# --- Rendering ---------------------------------------------------------------------------

_env = Environment(
    loader=FileSystemLoader(str(assets.WEB_DIR / "templates")),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def templates_reload(on: bool) -> None:
    """Whether templates are re-read when they change on disk (development only)."""
    _env.auto_reload = on


def compile_templates() -> int:
    """Compile every page template now; how many there are.

    Why: Jinja compiles a template on its first render, a dashboard's or a case page's
    layout and macros taking 100-350 ms of CPU. A web process that starts cold made its
    first visitors wait for that, each of them also slowing whatever else the process
    was drawing; ``casework serve`` calls this before it listens (:func:`warm_up`).
    """
    names = _env.list_templates(filter_func=lambda name: name.endswith(".html"))
    for name in names:
        _env.get_template(name)
    return len(names)


_env.globals.update(
    state_labels=STATE_LABELS,
    state_colours=STATE_COLOURS,
    status_colours=STATUS_COLOURS,
    status_words=words.STATUS_WORDS,
    words=words,
    deadline_labels=DEADLINE_LABELS,
    decision_type_labels=DECISION_TYPE_LABELS,
    kind_labels=KIND_LABELS,
    choice_options=choice_options,
    choice_labels=CHOICE_LABELS,
    event_label=event_label,
    fmt_date=fmt_date,
    fmt_datetime=fmt_datetime,
    display_phone=display_phone,
    actor_words=actor_words,
    document_words=document_words,
    size_words=size_words,
    # A fresh idempotency key for a form that must act once however often it is sent.
    new_form_key=lambda: secrets.token_urlsafe(16),
    role_words=role_words,
    # A step's form fields drawn empty, kept once drawn (see pages/fields.py).
    step_fields=lambda event, fields: draw_fields(_env, event, fields),
    kept_fields=lambda template, macro: draw_kept(_env, template, macro),
)


@dataclass
class NavItem:
    text: str
    href: str
    active: bool = False


def home_for(user: User) -> str:
    """Where each role lands after signing in."""
    if user.role == Role.commissioner:
        return "/reports"
    return "/portal" if user.role == Role.provider else "/"


def _nav_for(user: User | None, path: str) -> list[NavItem]:
    if user is None:
        return []
    if user.role == Role.provider:
        items = [NavItem("Our cases", "/portal")]
    elif user.role == Role.commissioner:
        items = [NavItem("Reports", "/reports")]
    else:
        items = [
            NavItem("Cases", "/"),
            NavItem("New case", "/cases/new"),
            NavItem("Letters to post", "/letters"),
        ]
        if user.role in MANAGER_ROLES:
            items.append(NavItem("Late and at risk", "/manager"))
            items.append(NavItem("Reports", "/reports"))
        if user.role == Role.admin:
            items.append(NavItem("Users", "/admin/users"))
    items.append(NavItem("Two-factor sign-in", "/account/two-factor"))
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
        "home_url": home_for(user) if user is not None else "/",
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
        return dt.date(year, month, day)
    except (ValueError, KeyError, OverflowError):
        raise cases.ValidationFailed(
            f"{label}: give a real date, for example 27 3 2026.", field=name
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
            day = date_from_parts(typed[f.name + "_parts"], f.name, f.label)
            raw[f.name] = day.isoformat() if day else ""
        else:
            raw[f.name] = typed[f.name]
    return raw


def form_version(form: FormData) -> int | None:
    try:
        return int(form_text(form, "version"))
    except ValueError:
        return None


COUNTS_TTL_SECONDS = 15.0


# One recount at a time: when the counts go stale under load, every page that arrived
# meanwhile used to count all the cases again, each its own tens of milliseconds.
_recount = threading.Lock()


def state_counts(app: Any, session: Session) -> dict[str, int]:
    """Cases per state, recounted at most every 15 seconds per app, by one request.

    Counting 100,000 cases by state costs tens of milliseconds on SQLite; the list
    itself is always live, and a count a few seconds old is fine for the sidebar.
    While one request recounts, the others show the counts just gone stale (or, when
    there are none yet, wait for that count). Changes made through these pages drop
    the cache (:func:`forget_counts`).
    """
    cached: tuple[float, dict[str, int]] | None = getattr(app.state, "state_counts", None)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    if not _recount.acquire(blocking=cached is None):
        assert cached is not None  # only a stale count lets a request not wait
        return cached[1]
    try:
        cached = getattr(app.state, "state_counts", None)
        moment = time.monotonic()
        if cached is not None and cached[0] > moment:
            return cached[1]  # counted while this request waited
        counts = {
            str(s): int(n)
            for s, n in session.execute(
                select(col(Case.state), func.count()).group_by(col(Case.state))
            ).all()
        }
        app.state.state_counts = (moment + COUNTS_TTL_SECONDS, counts)
        return counts
    finally:
        _recount.release()


def forget_counts(request: Request) -> None:
    """Drop the cached counts after a change made here, so the adviser sees it at once."""
    request.app.state.state_counts = None
