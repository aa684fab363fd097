"""The case as a page shows it, shared by the adviser's case page and the provider portal.

:func:`build_case_view` loads everything the page shows; :func:`render_case_view` renders
it with the page's form state, so the two doors differ only in what they load (the
portal: its own provider's case, no notices, only provider actions) and the extras
their templates need.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlmodel import Session, col

from casework import auth, cases
from casework.cases import words
from casework.cases.effects import EVENT_LABELS
from casework.cases.fields import EventField
from casework.cases.words import actor_words, delivery_status_words, moment_words
from casework.config import Settings
from casework.contacts import display_phone
from casework.models import (
    AgreementItem,
    Allocation,
    Case,
    CaseEvent,
    CaseNote,
    Deadline,
    DeliveryEvent,
    Notice,
    Person,
    Provider,
    User,
)
from casework.notify.render import RenderError
from casework.notify.render import render as render_notice
from casework.states import FINAL_STATES
from casework.web.errors import http_status
from casework.web.pages.common import (
    RagStatus,
    event_form_values,
    form_version,
    not_found,
    rag_for,
    render,
)
from casework.web.pages.labels import (
    DEADLINE_LABELS,
    DONE_MESSAGES,
    STATE_LABELS,
)


@dataclass
class DeadlineRow:
    deadline: Deadline
    label: str
    rag: RagStatus | None
    done_late: str = ""


@dataclass
class NoticeView:
    """What the family (or a provider, or the team) was sent, as the adviser reads it."""

    about: str
    to: str
    status: str
    subject: str
    body: str
    # True when nothing went out (yet): the text is what it says, or would have said.
    preview: bool
    deliveries: list[tuple[str, str]] = field(default_factory=list)
    reason: str = ""


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
    notice: NoticeView | None = None


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
    warnings: list[str] = field(default_factory=list)
    agreement_items: list[AgreementItem] = field(default_factory=list)
    notes: list[CaseNote] = field(default_factory=list)
    documents: list[cases.DocumentInfo] = field(default_factory=list)
    not_yet: list[tuple[str, str]] = field(default_factory=list)


# Steps that end a case: the page asks "are you sure" (what stops) before recording them.
CONFIRM_EVENTS = frozenset({"close", "withdraw"})


def load_case(session: Session, reference: str) -> tuple[Case, Person | None] | None:
    row = session.execute(
        select(Case, Person)
        .outerjoin(Person, (col(Person.case_id) == Case.id) & (col(Person.role) == "family"))
        .where(col(Case.reference) == reference.strip().upper())
    ).first()
    return None if row is None else (row[0], row[1])


def record_view(session: Session, case: Case, user: User, now: dt.datetime, channel: str) -> None:
    """Every look at a child's case is in its audit trail: the one use case for it."""
    cases.record_view(session, case, auth.actor_for(user, channel), now)


def _event_entry(e: CaseEvent, kind: str | None = None) -> TimelineEntry:
    change = ""
    if e.from_state and e.to_state and e.from_state != e.to_state:
        change = (
            f"{STATE_LABELS.get(e.from_state, e.from_state)} → "
            f"{STATE_LABELS.get(e.to_state, e.to_state)}"
        )
    return TimelineEntry(
        at=e.at,
        title=cases.event_label(e.event, kind),
        who=actor_words(e.actor),
        channel=e.channel,
        detail=cases.event_details(kind, e.event, e.data or {}) if kind else [],
        note=e.note,
        change=change,
    )


def _notice_entry(n: Notice, deliveries: Sequence[DeliveryEvent]) -> TimelineEntry:
    """A notice on the timeline: its words, its full text, every delivery step, and why not.

    A notice is rendered when it is sent; one still waiting (or never sent) shows the
    text it carries now, marked as such, so the adviser reads what the family would get.
    """
    subject, body, preview = n.subject, n.body, not n.body
    if preview:
        try:
            subject, body = render_notice(n.template, n.channel, dict(n.context or {}))
        except RenderError:
            subject, body = "", ""
    steps = [(moment_words(n.created_at), "Written")]
    if n.status == "queued" and n.not_before > n.created_at:
        steps.append((moment_words(n.not_before), "Not to be sent before"))
    steps += [(moment_words(e.at), delivery_status_words(e.status)) for e in deliveries]
    recipient = words.RECIPIENT_WORDS.get(n.recipient_role, "someone")
    channel = words.CHANNEL_WORDS.get(n.channel, "message")
    address = display_phone(n.to_address) if n.channel == "sms" else n.to_address
    return TimelineEntry(
        at=n.created_at,
        title=f"Notice: {words.template_words(n.template)}",
        status=n.status,
        notice=NoticeView(
            about=words.template_words(n.template),
            to=f"{recipient.capitalize()} by {channel} ({address})",
            status=words.NOTICE_STATUS_WORDS.get(n.status, "Unknown"),
            subject=subject,
            body=body,
            preview=preview,
            deliveries=steps,
            reason=words.notice_reason_words(n.status, n.last_error),
        ),
    )


def build_case_view(
    session: Session,
    case: Case | str,
    user: User,
    now: dt.datetime,
    settings: Settings,
    *,
    channel: str = "web",
    with_notices: bool = True,
    events: Iterable[str] | None = None,
    record: bool = False,
) -> CaseView:
    """The case page from the one read model of a case (:func:`casework.cases.case_detail`).

    ``events`` narrows the offered actions further (the portal offers a provider's
    steps only once it has accepted the case); who may record what is the use case's.
    ``record`` writes this look to the audit trail, committed before the lists are read.
    """
    detail = cases.case_detail(
        session,
        case if isinstance(case, str) else case.reference,
        actor=auth.actor_for(user, channel),
        now=now,
        with_notices=with_notices,
        with_views=True,
        record=record,
    )
    deadlines = [
        DeadlineRow(
            d,
            DEADLINE_LABELS.get(d.kind, d.kind),
            rag_for(d, now, settings),
            cases.done_late(d, calendars=settings.calendars),
        )
        for d in detail.deadlines
    ]
    timeline = [_event_entry(e, detail.case.kind) for e in detail.events]
    timeline += [_notice_entry(n, detail.deliveries.get(n.id or 0, [])) for n in detail.notices]
    timeline.sort(key=lambda t: t.at, reverse=True)
    wanted = set(events) if events is not None else None
    return CaseView(
        case=detail.case,
        family=detail.family,
        provider=detail.provider,
        allocation=detail.allocation,
        allocation_provider=detail.allocation_provider,
        deadlines=deadlines,
        timeline=timeline,
        views=detail.recent_views,
        view_count=detail.view_count,
        actions=[
            (name, spec.label, spec.fields)
            for name, spec in detail.actions
            if wanted is None or name in wanted
        ],
        warnings=detail.warnings,
        agreement_items=detail.agreement_items,
        notes=detail.notes,
        documents=detail.documents,
        not_yet=[(label, why) for label, why in detail.not_yet],
    )


def latest_step_warning(view: CaseView) -> str:
    """The warning the latest recorded step carried (for the page after the redirect)."""
    for entry in view.timeline:
        if entry.status:  # a notice, not a step
            continue
        return next((text for key, text in entry.detail if key == "Warning"), "")
    return ""


def next_deadlines(session: Session, case_ids: Sequence[int]) -> dict[int, Deadline]:
    """The most urgent clock still due of each case (:func:`casework.cases.next_deadlines`)."""
    return cases.next_deadlines(session, case_ids)


def done_message(done: str) -> str:
    """The green banner after a change (``?done=...``): a named outcome or an event."""
    if done in DONE_MESSAGES:
        return DONE_MESSAGES[done]
    if done in EVENT_LABELS:
        return f"{EVENT_LABELS[done]}: recorded."
    return ""


def render_case_view(
    request: Request,
    template: str,
    view: CaseView,
    *,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    open_event: str | None = None,
    values: dict[str, Any] | None = None,
    banner: str = "",
    banner_title: str = "",
    done: str = "",
    warned: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> HTMLResponse:
    """A case page (adviser's or portal's), optionally re-rendered with one form's errors.

    ``warned``: the step just recorded carried a warning (the use case's, kept on its
    audit row); it is shown above the page so the person checks it now.
    """
    return render(
        request,
        template,
        {
            "page_title": f"Case {view.case.reference}",
            "view": view,
            "is_final": view.case.state in FINAL_STATES,
            "errors": errors or {},
            "open_event": open_event,
            "values": values or {},
            "banner": banner,
            "banner_title": banner_title,
            "done_message": done_message(done),
            "step_warning": latest_step_warning(view) if warned else "",
            **(extra or {}),
        },
        status_code=status_code,
    )


def download(
    session: Session,
    user: User,
    now: dt.datetime,
    case: Case,
    document_id: int,
    channel: str,
    settings: Settings | None = None,
) -> Response:
    """One document of ``case`` as a file download; the use case audits it first (and,
    for provider staff, checks with ``settings`` that the provider may open the case)."""
    try:
        document = cases.get_document(
            session, document_id, auth.actor_for(user, channel), now, settings=settings
        )
    except cases.NotFound:
        raise not_found("document") from None
    if document.case_id != case.id:
        raise not_found("document")
    return Response(
        content=document.content,
        media_type=document.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{document.file_name}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


def refusal_page(
    request: Request,
    session: Session,
    user: User,
    now: dt.datetime,
    reference: str,
    exc: cases.CaseworkError,
    *,
    open_event: str | None = None,
    values: dict[str, Any] | None = None,
    render_case: Callable[..., HTMLResponse],
) -> HTMLResponse:
    """Turn a refusal from a use case into the same page with the message where it belongs.

    ``render_case`` draws that page (the adviser's case or allocation page, the
    portal's case page) with the arguments of :func:`render_case_view`.
    """
    if isinstance(exc, cases.NotFound):
        raise not_found()
    if isinstance(exc, cases.ValidationFailed):
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
    if isinstance(exc, cases.Conflict):
        return render_case(
            request,
            session,
            user,
            now,
            reference,
            status_code=409,
            banner=(
                f"Someone else changed this case while you were looking at it. {exc} "
                "Nothing you entered was saved: what you typed is kept in the form below;"
                " check the case and send it again."
            ),
            banner_title="Someone else changed this case",
            # What was typed stays in its form, open, so nothing has to be typed again.
            open_event=open_event,
            values=values,
        )
    return render_case(
        request,
        session,
        user,
        now,
        reference,
        status_code=http_status(exc),
        banner=str(exc),
        banner_title="That cannot be done now",
    )


def post_case_event(
    request: Request,
    session: Session,
    now: dt.datetime,
    user: User,
    case: Case,
    event: str,
    form: Any,
    *,
    channel: str,
    render_case: Callable[..., HTMLResponse],
    done_url: str,
    offered: Iterable[str] | None = None,
) -> Response:
    """Record one step from a case page's form (the adviser's or the portal's).

    The door only reads the form: whether the step is possible now, who may record
    it and every date rule are the use case's, and its refusal comes back on the page
    with what was typed.
    """
    actor = auth.actor_for(user, channel)
    mine = dict(cases.allowed_events(case, actor))
    allowed = set(offered) if offered is not None else None
    spec = mine.get(event) if allowed is None or event in allowed else None
    typed: dict[str, Any] = {}
    try:
        version = form_version(form)
        if spec is None:
            # Not possible for this person now: the use case says why (a stale form,
            # "changed by someone else", first), before any field of the form is read.
            raw: dict[str, str] = {}
        else:
            raw = event_form_values(form, spec.fields, typed)
        if event in CONFIRM_EVENTS and form.get("confirmed") != "yes":
            # Closing or withdrawing is asked twice: first what it will do, worked out
            # by the use case itself (nothing is recorded), then the record on "yes".
            preview = cases.preview_event(
                session,
                case.reference,
                event,
                now=now,
                actor=actor,
                settings=request.app.state.settings,
                data=raw,
                expected_version=version,
            )
            return confirm_page(request, preview, form, done_url)
        # The case this door read (for its 404 and its form's fields) stays here,
        # detached: the step loads its own on Core, and the page after the redirect
        # shows what it wrote.
        cases.release_case_rows(session)
        recorded = cases.record_step(
            session,
            case.reference,
            event,
            now=now,
            actor=actor,
            settings=request.app.state.settings,
            data=raw,
            expected_version=version,
        )
    except cases.CaseworkError as exc:
        session.rollback()
        return refusal_page(
            request,
            session,
            user,
            now,
            case.reference,
            exc,
            open_event=event,
            values=typed,
            render_case=render_case,
        )
    warned = "&warned=1" if recorded.warnings else ""
    return RedirectResponse(f"{done_url}?done={quote(event)}{warned}", status_code=303)


def confirm_page(
    request: Request, preview: cases.Preview, form: Any, done_url: str
) -> HTMLResponse:
    """Check before closing or withdrawing: what the step will do, and the form again.

    Every field typed is carried as it was typed (hidden), so "yes" records exactly
    what was checked; "no" is a link back to the case and records nothing.
    """
    carried = [
        (name, value)
        for name, value in form.multi_items()
        if isinstance(value, str) and name not in ("csrf_token", "confirmed")
    ]
    return render(
        request,
        "confirm_step.html",
        {
            "page_title": f"Check before you record: {preview.label} ({preview.case_reference})",
            "preview": preview,
            "carried": carried,
            "action": str(request.url.path),
            "back_url": done_url,
        },
    )
