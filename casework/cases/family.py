"""The family's own page: a secret link per case, one-time codes, and what the family sees.

Every notice to a family carries the link (``/family/<token>``; the token is random
and the only thing in the address). Opening it asks for a one-time code sent to the
family's phone or email; the code lasts ``family_code_minutes`` (10) and allows
``family_code_tries`` (5) wrong answers, after which the page waits
``family_code_wait_minutes`` (15) before another code can be asked for or tried.
The link is issued when the case is opened, can be revoked (and a new one issued) by
the adviser, and stops working ``family_link_days_after_closure`` (90) days after
the case is closed or withdrawn.

What the family reads is :func:`family_view`, built from the fields listed in
:data:`FAMILY_FIELDS` and nothing else: a field added to a case later stays with the
IAS until someone decides the family needs it. The family changes how it hears from
us through :func:`casework.cases.contact.update_contact` and asks for a call back
through :func:`casework.cases.notes.log_call`, as "the family", so the rules of
those use cases are the same for every door.

A family that replies STOP to our texts (Twilio refuses the next one with 21610)
withdraws its consent: :func:`apply_sms_opt_outs` records that, tells the adviser,
and sends the refused notice by the family's next channel.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm.attributes import flag_modified
from sqlmodel import Session, col

from casework import deadlines as dl
from casework.cases.contact import CONSENT_WORDS, readdress_unsent, update_contact
from casework.cases.context import Actor
from casework.cases.documents import DocumentInfo, documents_of, get_document
from casework.cases.errors import NotFound, NotPermitted, TransitionRefused, ValidationFailed
from casework.cases.notes import IAS_ROLES, log_call
from casework.cases.unit import (
    audit_event,
    case_transaction,
    load_case,
    record_change,
    require_aware,
    runs_again_as_writer,
)
from casework.cases.words import moment_words
from casework.config import Settings
from casework.contacts import can_text, display_phone
from casework.models import (
    Case,
    CaseEvent,
    CaseNote,
    Deadline,
    DeadlineStatus,
    DeliveryEvent,
    FamilyCode,
    FamilyLink,
    Notice,
    NoticeStatus,
    Person,
    User,
)
from casework.notices import (
    family_page_url,
    family_token,
    insert_notices,
    outbox_row,
    token_hash,
)
from casework.states import FINAL_STATES, CaseState

# The family acting on its own page, and the family replying STOP to a text message.
FAMILY_ACTOR = Actor(id="family:page", role="family", channel="family")
STOP_ACTOR = Actor(id="family:stop", role="family", channel="sms")
CODE_TEMPLATE = "family_code"
CODE_DIGITS = 6
# How many codes a link may be sent in an hour: enough for a typo'd number or a slow
# text, too few to flood the family's phone from a leaked link.
CODES_PER_HOUR = 5
CALL_BACK_MAX = 500
OPTED_OUT = "opted_out"
OPT_OUT_APPLIED = "opt_out_applied"

LINK_NOT_WORKING = (
    "This link does not work any more. It may have been replaced by a newer one, or the"
    " case was closed some time ago. Call us and we will help."
)


# --- Links ------------------------------------------------------------------------------


def _new_link(case: Case, *, now: dt.datetime, actor: Actor, settings: Settings) -> FamilyLink:
    nonce = secrets.token_urlsafe(24)
    return FamilyLink(
        case_id=case.id,  # type: ignore[arg-type]
        nonce=nonce,
        token_hash=token_hash(family_token(settings.secret_key, nonce)),
        created_at=now,
        created_by=actor.id,
    )


def first_link(
    session: Session, case: Case, *, now: dt.datetime, actor: Actor, settings: Settings
) -> FamilyLink:
    """The link a new case gets, inside the opening's own transaction (its audit row)."""
    link = _new_link(case, now=now, actor=actor, settings=settings)
    session.add(link)
    return link


def _live_links(session: Session, case: Case) -> list[FamilyLink]:
    return list(
        session.execute(
            select(FamilyLink).where(
                col(FamilyLink.case_id) == case.id, col(FamilyLink.revoked_at).is_(None)
            )
        ).scalars()
    )


def _check_adviser(actor: Actor) -> None:
    if actor.role not in IAS_ROLES:
        raise NotPermitted("The family's page link is managed by the IAS adviser.")


@runs_again_as_writer
def issue_link(
    session: Session, reference: str, *, now: dt.datetime, actor: Actor, settings: Settings
) -> str:
    """A new link for the family (any older one stops working); returns its address.

    The adviser gives it out when a link was lost or forwarded; the next notice to
    the family carries it too.
    """
    now = require_aware(now)
    _check_adviser(actor)
    with case_transaction(session, reference):
        case, family, _provider = load_case(session, reference)
        revoked = 0
        for old in _live_links(session, case):
            old.revoked_at, old.revoked_by = now, actor.id
            revoked += 1
        link = _new_link(case, now=now, actor=actor, settings=settings)
        session.add(link)
        # The family is sent the new link at once (the notice configured for this event;
        # the dispatcher writes the link in, so the token is stored nowhere).
        record_change(
            session,
            case,
            actor=actor,
            event="issue_family_link",
            at=now,
            from_state=case.state,
            settings=settings,
            data={"links_stopped": revoked},
            family=family,
        )
        session.commit()
    return family_page_url(settings, family_token(settings.secret_key, link.nonce))


@runs_again_as_writer
def revoke_link(session: Session, reference: str, *, now: dt.datetime, actor: Actor) -> int:
    """Stop the family's link working (a forwarded or lost link); how many were stopped."""
    now = require_aware(now)
    _check_adviser(actor)
    with case_transaction(session, reference):
        case, _family, _provider = load_case(session, reference)
        links = _live_links(session, case)
        if not links:
            raise TransitionRefused(
                f"{case.reference} has no family page link working: issue a new one instead."
            )
        for link in links:
            link.revoked_at, link.revoked_by = now, actor.id
        session.add(
            audit_event(
                case,
                actor=actor,
                event="revoke_family_link",
                at=now,
                from_state=case.state,
                data={"links_stopped": len(links)},
            )
        )
        session.commit()
    return len(links)


def closed_at(session: Session, case: Case) -> dt.datetime | None:
    """When the case was closed or withdrawn (None while it is open)."""
    if case.state not in FINAL_STATES:
        return None
    moment: dt.datetime | None = session.execute(
        select(func.max(col(CaseEvent.at))).where(
            col(CaseEvent.case_id) == case.id, col(CaseEvent.to_state) == case.state
        )
    ).scalar()
    return moment or case.updated_at


@dataclass(frozen=True, slots=True)
class OpenLink:
    """A link that works now: the link row, its case and the family contact."""

    link: FamilyLink
    case: Case
    family: Person


def open_link(session: Session, token: str, *, now: dt.datetime, settings: Settings) -> OpenLink:
    """The case behind a token, if the link still works; otherwise one plain refusal.

    Unknown, revoked and expired links read the same, so a guessed token learns
    nothing about which cases exist.
    """
    now = require_aware(now)
    if not token or len(token) > 64:
        raise NotFound(LINK_NOT_WORKING)
    link = session.execute(
        select(FamilyLink).where(col(FamilyLink.token_hash) == token_hash(token))
    ).scalar_one_or_none()
    if link is None or link.revoked_at is not None:
        raise NotFound(LINK_NOT_WORKING)
    case = session.get(Case, link.case_id)
    family = session.execute(
        select(Person).where(col(Person.case_id) == link.case_id, col(Person.role) == "family")
    ).scalar_one_or_none()
    if case is None or family is None:
        raise NotFound(LINK_NOT_WORKING)
    ended = closed_at(session, case)
    if ended is not None and now >= ended + dt.timedelta(
        days=settings.family_link_days_after_closure
    ):
        raise NotFound(LINK_NOT_WORKING)
    return OpenLink(link=link, case=case, family=family)


# --- One-time codes ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CodeChannel:
    """A way a code can reach the family, described without giving the address away."""

    channel: str
    words: str


def _mask_email(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local[:1]}…@{domain}" if domain else "your email address"


def code_channels(family: Person) -> list[CodeChannel]:
    """Where a code can go: a mobile the family lets us text, and its email."""
    out = []
    if family.phone and family.sms_consent and can_text(family.phone):
        digits = display_phone(family.phone).replace(" ", "")
        out.append(CodeChannel("sms", f"A text message to the mobile number ending {digits[-3:]}"))
    if family.email:
        out.append(CodeChannel("email", f"An email to {_mask_email(family.email)}"))
    return out


def _code_hash(settings: Settings, link_id: int, code: str) -> str:
    message = f"family-code:{link_id}:{code}".encode()
    return hmac.new(settings.secret_key.encode(), message, hashlib.sha256).hexdigest()


def _time_words(moment: dt.datetime) -> str:
    local = moment.astimezone(dl.LONDON)
    hour = local.hour % 12 or 12
    return f"{hour}:{local.minute:02d}{'am' if local.hour < 12 else 'pm'}"


def _check_not_waiting(link: FamilyLink, now: dt.datetime, settings: Settings) -> None:
    if link.locked_until is not None and now < link.locked_until:
        raise NotPermitted(
            f"The code was typed wrongly {settings.family_code_tries} times, so this page"
            f" is paused for {settings.family_code_wait_minutes} minutes. You can ask for a"
            f" new code after {_time_words(link.locked_until)}."
        )


@dataclass(frozen=True, slots=True)
class CodeSent:
    channel: CodeChannel
    expires_at: dt.datetime


@runs_again_as_writer
def request_code(
    session: Session, token: str, *, channel: str, now: dt.datetime, settings: Settings
) -> CodeSent:
    """Send a new one-time code by ``channel`` ("sms" or "email"); older codes stop working.

    The code goes through the same outbox and dispatcher as every notice, with its
    own template, and the message says nothing about the case: a code on a shared
    phone must not tell anyone what the family is dealing with.
    """
    now = require_aware(now)
    opened = open_link(session, token, now=now, settings=settings)
    link, family = opened.link, opened.family
    _check_not_waiting(link, now, settings)
    choice = next((c for c in code_channels(family) if c.channel == channel), None)
    if choice is None:
        raise ValidationFailed("Choose where we should send your code.", field="channel")
    recent = session.execute(
        select(func.count())
        .select_from(FamilyCode)
        .where(
            col(FamilyCode.link_id) == link.id,
            col(FamilyCode.sent_at) > now - dt.timedelta(hours=1),
        )
    ).scalar_one()
    if recent >= CODES_PER_HOUR:
        raise NotPermitted(
            f"We have sent {CODES_PER_HOUR} codes in the last hour. Use the newest code you"
            " received, or wait an hour and ask again. If codes are not reaching you, call us."
        )
    code = "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS))
    expires = now + dt.timedelta(minutes=settings.family_code_minutes)
    with case_transaction(session, opened.case.reference):
        for old in session.execute(
            select(FamilyCode).where(
                col(FamilyCode.link_id) == link.id, col(FamilyCode.used_at).is_(None)
            )
        ).scalars():
            old.used_at = now  # only the newest code works
        row = FamilyCode(
            link_id=link.id,  # type: ignore[arg-type]
            code_hash=_code_hash(settings, link.id, code),  # type: ignore[arg-type]
            channel=choice.channel,
            sent_at=now,
            expires_at=expires,
        )
        session.add(row)
        session.flush()
        address = family.phone if choice.channel == "sms" else family.email
        insert_notices(
            session,
            [
                outbox_row(
                    key=f"family-code:{row.id}",
                    case_id=opened.case.id,
                    template=CODE_TEMPLATE,
                    recipient="family",
                    channel=choice.channel,
                    address=address,
                    # Nothing of the case: the service's name, the code, how long it lasts.
                    context={
                        "notice_kind": "code",
                        "service_name": settings.service.name,
                        "code": code,
                        "minutes": settings.family_code_minutes,
                    },
                    not_before=now,
                    now=now,
                )
            ],
        )
        session.commit()
    return CodeSent(channel=choice, expires_at=expires)


@dataclass(frozen=True, slots=True)
class FamilySignIn:
    """A family signed in to its page: which link, and until when."""

    link_id: int
    case_id: int
    until: dt.datetime


@runs_again_as_writer
def check_code(
    session: Session, token: str, code: str, *, now: dt.datetime, settings: Settings
) -> FamilySignIn:
    """Check a typed code; a right one opens the page, recorded on the case.

    A wrong code counts against the newest code's tries; the last allowed wrong try
    pauses the link for ``family_code_wait_minutes``. Tries are committed before the
    refusal is raised, so reloading the page does not reset them.
    """
    now = require_aware(now)
    opened = open_link(session, token, now=now, settings=settings)
    link = opened.link
    _check_not_waiting(link, now, settings)
    typed = "".join((code or "").split())
    if not typed:
        raise ValidationFailed("Enter the code we sent you.", field="code")
    current = session.execute(
        select(FamilyCode)
        .where(col(FamilyCode.link_id) == link.id, col(FamilyCode.used_at).is_(None))
        .order_by(col(FamilyCode.id).desc())
        .limit(1)
    ).scalar_one_or_none()
    if current is None:
        raise ValidationFailed(
            "That code has already been used or replaced: ask for a new code.", field="code"
        )
    if now >= current.expires_at:
        raise ValidationFailed(
            f"That code has expired (codes last {settings.family_code_minutes} minutes):"
            " ask for a new code.",
            field="code",
        )
    reference = opened.case.reference
    if not hmac.compare_digest(
        _code_hash(settings, link.id, typed),  # type: ignore[arg-type]
        current.code_hash,
    ):
        with case_transaction(session, reference):
            current.tries += 1
            left = settings.family_code_tries - current.tries
            if left <= 0:
                current.used_at = now
                link.locked_until = now + dt.timedelta(minutes=settings.family_code_wait_minutes)
            session.commit()
        if left <= 0:
            _check_not_waiting(link, now, settings)
        raise ValidationFailed(
            "That code is not right. Check the newest message we sent you."
            f" You have {left} {'try' if left == 1 else 'tries'} left.",
            field="code",
        )
    with case_transaction(session, reference):
        current.used_at = now
        case = opened.case
        session.add(
            audit_event(
                case,
                actor=FAMILY_ACTOR,
                event="family_sign_in",
                at=now,
                from_state=case.state,
                data={"code_sent_by": "text message" if current.channel == "sms" else "email"},
            )
        )
        session.commit()
    return FamilySignIn(
        link_id=link.id,  # type: ignore[arg-type]
        case_id=opened.case.id,  # type: ignore[arg-type]
        until=now + dt.timedelta(minutes=settings.family_session_minutes),
    )


def signed_in_link(
    session: Session, token: str, link_id: int, *, now: dt.datetime, settings: Settings
) -> OpenLink:
    """The open link for a signed-in family, checked again on every request.

    A sign-in belongs to one link: revoking the link (or the case passing closure
    plus 90 days) ends it at once, and a sign-in for another case opens nothing here.
    """
    opened = open_link(session, token, now=now, settings=settings)
    if opened.link.id != link_id:
        raise NotFound(LINK_NOT_WORKING)
    return opened


# --- What the family reads --------------------------------------------------------------

# The only things of a case the family page shows (a test per field).
FAMILY_FIELDS: tuple[str, ...] = (
    "reference",
    "stage",
    "next_step",
    "who_acts",
    "appeal",
    "deadlines",
    "meeting",
    "documents",
    "messages",
    "adviser",
    "channels",
)
# Where the case is, in the family's words.
STAGE_WORDS: dict[str, str] = {
    CaseState.requested: "We have your request. An adviser will call you to talk it through.",
    CaseState.advised: "An adviser has given you information and advice.",
    CaseState.mediating: "You chose mediation. It is being arranged or has started.",
    CaseState.declined: "You decided not to go to mediation.",
    CaseState.certificate_issued: "Your mediation certificate has been issued.",
    CaseState.appeal_ready: "You have what you need to appeal to the Tribunal.",
    CaseState.allocated: "A disagreement resolution service is working on your case.",
    CaseState.meeting_held: "Your disagreement resolution meeting has taken place.",
    CaseState.closed: "Your case is closed.",
    CaseState.withdrawn: "Your case was closed at your request.",
}
# What happens next and who does it.
NEXT_STEP_WORDS: dict[str, tuple[str, str]] = {
    CaseState.requested: ("We call you to give you advice about your options.", "Your adviser"),
    CaseState.advised: (
        "Tell us whether you want mediation. If you do not, we will issue a certificate"
        " so you can appeal.",
        "You",
    ),
    CaseState.mediating: (
        "The mediation meeting is arranged and held. Afterwards the mediator issues your"
        " certificate.",
        "The mediation service and the local authority",
    ),
    CaseState.declined: ("We issue your mediation certificate.", "Your adviser"),
    CaseState.certificate_issued: (
        "Decide whether to appeal, and send your appeal to the Tribunal by the date below.",
        "You",
    ),
    CaseState.appeal_ready: (
        "Send your appeal to the Tribunal by the date below, if you have not yet.",
        "You",
    ),
    CaseState.allocated: (
        "The service arranges a meeting with you and the school or local authority.",
        "The disagreement resolution service",
    ),
    CaseState.meeting_held: ("We check that what was agreed is happening.", "Your adviser"),
    CaseState.closed: ("Nothing more is needed. Call us if anything changes.", "Nobody"),
    CaseState.withdrawn: ("Nothing more is needed. Call us if anything changes.", "Nobody"),
}
# The clocks that matter to the family, in its words (the appeal is shown on its own).
FAMILY_CLOCK_WORDS: dict[str, str] = {
    "contact_adviser": "Tell a mediation adviser whether you want mediation",
    "mediation_meeting": "The mediation meeting must take place",
    "scheduled_meeting": "Your meeting",
    "certificate_after_decline": "We issue your certificate",
    "certificate_not_arranged": "We issue your certificate (meeting not arranged)",
    "certificate_after_meeting": "The mediator issues your certificate",
    "agreement_implemented": "What was agreed must be done",
}
# The documents a family may download from its page.
FAMILY_DOCUMENT_KINDS: frozenset[str] = frozenset(
    {
        "certificate_declined",
        "certificate_not_arranged",
        "certificate_mediation_held",
        "meeting_invitation",
        "letter",
    }
)
DOCUMENT_WORDS: dict[str, str] = {
    "certificate_declined": "Mediation certificate",
    "certificate_not_arranged": "Mediation certificate",
    "certificate_mediation_held": "Mediation certificate",
    "meeting_invitation": "Meeting invitation (for your calendar)",
    "letter": "Letter",
}
CHANNEL_NAMES: dict[str, str] = {"sms": "Text message", "email": "Email"}


@dataclass(frozen=True, slots=True)
class FamilyDeadline:
    label: str
    due_text: str
    working: str
    passed: bool


@dataclass(frozen=True, slots=True)
class FamilyMeeting:
    date_text: str
    time_text: str
    place: str
    # The calendar invitation to download, once one has been made for the meeting.
    invitation_id: int | None = None


@dataclass(frozen=True, slots=True)
class FamilyDocument:
    id: int
    title: str
    date_text: str
    media_type: str
    size_text: str


@dataclass(frozen=True, slots=True)
class FamilyMessage:
    sent_text: str
    channel: str
    subject: str
    body: str


@dataclass(frozen=True, slots=True)
class AdviserContact:
    name: str
    phone: str
    email: str


@dataclass(frozen=True, slots=True)
class FamilyChannels:
    sms: bool
    email: bool
    can_text: bool
    has_email: bool


@dataclass(frozen=True, slots=True)
class FamilyView:
    """The family's page: exactly :data:`FAMILY_FIELDS`, every value already in words."""

    reference: str
    stage: str
    next_step: str
    who_acts: str
    appeal: FamilyDeadline | None
    deadlines: list[FamilyDeadline]
    meeting: FamilyMeeting | None
    documents: list[FamilyDocument]
    messages: list[FamilyMessage]
    adviser: AdviserContact
    channels: FamilyChannels


def _appeal(case: Case, deadlines: list[Deadline], today: dt.date) -> FamilyDeadline | None:
    row = next(
        (
            d
            for d in reversed(deadlines)
            if d.kind == "appeal" and d.status != DeadlineStatus.cancelled
        ),
        None,
    )
    due = case.appeal_due or (row.due_date if row is not None else None)
    if due is None:
        return None
    return FamilyDeadline(
        label="Your appeal must reach the Tribunal",
        due_text=f"{dl.fmt(due)}, 5pm",
        working=row.explanation if row is not None else "",
        passed=due < today,
    )


def _deadlines(deadlines: list[Deadline], today: dt.date) -> list[FamilyDeadline]:
    out = []
    for d in deadlines:
        if d.kind not in FAMILY_CLOCK_WORDS or d.status not in (
            DeadlineStatus.open,
            DeadlineStatus.missed,
        ):
            continue
        if d.status == DeadlineStatus.missed and d.done_on is not None:
            continue
        out.append(
            FamilyDeadline(
                label=FAMILY_CLOCK_WORDS[d.kind],
                due_text=dl.fmt(d.due_date),
                working=d.explanation,
                passed=d.due_date < today,
            )
        )
    out.sort(key=lambda f: f.passed)
    return out


def _meeting(case: Case, documents: list[DocumentInfo]) -> FamilyMeeting | None:
    if case.meeting_on is None or case.meeting_held_on is not None:
        return None
    invitation = next((d for d in documents if d.kind == "meeting_invitation"), None)
    return FamilyMeeting(
        date_text=dl.fmt(case.meeting_on),
        time_text=_clock_words(case.meeting_time) if case.meeting_time else "to be confirmed",
        place=case.meeting_place
        or "Your mediator will confirm where it is, or send you a video link.",
        invitation_id=invitation.id if invitation is not None else None,
    )


def _clock_words(hhmm: str) -> str:
    try:
        moment = dt.time.fromisoformat(hhmm)
    except ValueError:
        return hhmm
    hour = moment.hour % 12 or 12
    return f"{hour}:{moment.minute:02d}{'am' if moment.hour < 12 else 'pm'}"


def _size_words(size: int) -> str:
    return f"{size / 1024:.0f} KB" if size < 1024 * 1024 else f"{size / 1024 / 1024:.1f} MB"


def family_documents(session: Session, case: Case) -> list[DocumentInfo]:
    """The case's current documents of the kinds a family may read (no bytes loaded)."""
    return [
        d
        for d in documents_of(session, case, FAMILY_ACTOR)
        if d.kind in FAMILY_DOCUMENT_KINDS and d.current
    ]


def _messages(session: Session, case: Case) -> list[FamilyMessage]:
    notices = session.execute(
        select(Notice)
        .where(
            col(Notice.case_id) == case.id,
            col(Notice.recipient_role) == "family",
            col(Notice.status).in_([NoticeStatus.sent, NoticeStatus.delivered]),
            col(Notice.template) != CODE_TEMPLATE,
        )
        .order_by(col(Notice.sent_at).desc(), col(Notice.id).desc())
    ).scalars()
    return [
        FamilyMessage(
            sent_text=moment_words(n.sent_at),
            channel=CHANNEL_NAMES.get(n.channel, "Message"),
            subject=n.subject,
            body=n.body,
        )
        for n in notices
    ]


def _adviser(session: Session, case: Case, settings: Settings) -> AdviserContact:
    name = ""
    if case.adviser:
        user = session.execute(
            select(User).where(col(User.email) == case.adviser)
        ).scalar_one_or_none()
        name = user.name if user is not None and user.name else ""
    email = settings.service.email
    if settings.family_page_shows_adviser_email and case.adviser:
        email = case.adviser
    return AdviserContact(
        name=name or f"An adviser at {settings.service.name}",
        phone=settings.service.helpline,
        email=email,
    )


def family_view(
    session: Session, opened: OpenLink, *, now: dt.datetime, settings: Settings
) -> FamilyView:
    """The family's page, from the listed fields only; dates in words, no codes."""
    case, family = opened.case, opened.family
    today = dl.local_date(now)
    deadlines = list(
        session.execute(
            select(Deadline).where(col(Deadline.case_id) == case.id).order_by(col(Deadline.id))
        ).scalars()
    )
    step, who = NEXT_STEP_WORDS.get(case.state, ("Call us to find out.", "Your adviser"))
    stored = family_documents(session, case)
    documents = [
        FamilyDocument(
            id=d.id,
            title=DOCUMENT_WORDS.get(d.kind, "Document"),
            date_text=dl.fmt(dl.local_date(d.created_at)),
            media_type=d.media_type,
            size_text=_size_words(d.size),
        )
        for d in stored
    ]
    return FamilyView(
        reference=case.reference,
        stage=STAGE_WORDS.get(case.state, "We are working on your case."),
        next_step=step,
        who_acts=who,
        appeal=_appeal(case, deadlines, today),
        deadlines=_deadlines(deadlines, today),
        meeting=_meeting(case, stored),
        documents=documents,
        messages=_messages(session, case),
        adviser=_adviser(session, case, settings),
        channels=FamilyChannels(
            sms="sms" in family.channels and family.sms_consent,
            email="email" in family.channels,
            can_text=bool(family.phone) and can_text(family.phone),
            has_email=bool(family.email),
        ),
    )


def family_document(
    session: Session, opened: OpenLink, document_id: int, *, now: dt.datetime
) -> Any:
    """One of the family's documents, its download recorded on the case like a view."""
    allowed = {d.id for d in family_documents(session, opened.case)}
    if document_id not in allowed:
        raise NotFound("There is no such document on your page.")
    return get_document(session, document_id, FAMILY_ACTOR, now)


# --- What the family can do -------------------------------------------------------------


def change_channels(
    session: Session,
    opened: OpenLink,
    *,
    channels: list[str],
    now: dt.datetime,
) -> Person:
    """How the family hears from us; leaving text messages out stops all texts (consent).

    Through the contact use case, as "the family", so the checks (an email address
    for email-only, at least one way) and the re-addressing of notices not yet sent
    are the same as when the adviser changes them.
    """
    chosen = [c for c in ("sms", "email") if c in channels]
    if not chosen:
        raise ValidationFailed(
            "Choose at least one way for us to contact you: text message or email.",
            field="channels",
        )
    if "sms" in chosen and not (opened.family.phone and can_text(opened.family.phone)):
        raise ValidationFailed(
            "We can text only a UK mobile number, and we do not have one for you: call us to give"
            " us one.",
            field="channels",
        )
    if "email" in chosen and not opened.family.email:
        raise ValidationFailed(
            "We do not have an email address for you: call us to give us one.", field="channels"
        )
    return update_contact(
        session,
        opened.case.reference,
        reason="Changed by the family on its own page",
        now=now,
        actor=FAMILY_ACTOR,
        preferred_channels=",".join(chosen),
        sms_consent="sms" in chosen,
    )


def request_call_back(
    session: Session,
    opened: OpenLink,
    *,
    when: str,
    now: dt.datetime,
    settings: Settings,
) -> CaseNote:
    """The family asks us to ring: a call in the adviser's call log, and the adviser told."""
    best = " ".join((when or "").split())
    if len(best) > CALL_BACK_MAX:
        raise ValidationFailed(
            f"When is best to call: keep it to {CALL_BACK_MAX} characters or fewer.",
            field="when",
        )
    summary = "The family asked for a call back on its page."
    if best:
        summary += f" Best time to call: {best}"
    return log_call(
        session,
        opened.case.reference,
        call_on=dl.local_date(now),
        direction="in",
        who="The family (asked on its page)",
        summary=summary,
        now=now,
        actor=FAMILY_ACTOR,
        event="family_call_back",
        settings=settings,
    )


# --- The family replied STOP ------------------------------------------------------------


def apply_sms_opt_outs(engine: Engine, now: dt.datetime, settings: Settings) -> int:
    """Act on every text refused because the family replied STOP; how many were handled.

    The dispatcher has failed the notice and recorded why (an "opted_out" delivery
    event). For each one, in one transaction: the family's SMS consent ends
    (audited as "the family (replied STOP)"), the adviser gets a note and a message,
    the family's queued texts move to its email, and the refused notice is sent again
    by email (or, with no email, the adviser is asked to reach the family). A marker
    event makes each refusal handled once, however often this runs.
    """
    now = require_aware(now)
    handled = 0
    with Session(engine, expire_on_commit=False) as session:
        done = select(col(DeliveryEvent.notice_id)).where(
            col(DeliveryEvent.status) == OPT_OUT_APPLIED
        )
        pending = list(
            session.execute(
                select(Notice)
                .join(DeliveryEvent, col(DeliveryEvent.notice_id) == Notice.id)
                .where(
                    col(DeliveryEvent.status) == OPTED_OUT,
                    col(Notice.recipient_role) == "family",
                    col(Notice.case_id).is_not(None),
                    col(Notice.id).not_in(done),
                )
                .order_by(col(Notice.id))
            ).scalars()
        )
        for notice in pending:
            _apply_opt_out(session, notice, now, settings)
            handled += 1
    return handled


@runs_again_as_writer
def _apply_opt_out(session: Session, notice: Notice, now: dt.datetime, settings: Settings) -> None:
    case = session.get(Case, notice.case_id)
    assert case is not None
    with case_transaction(session, case.reference):
        _case, family, _provider = load_case(session, case.reference)
        case.updated_at = now
        flag_modified(case, "updated_at")
        session.add(
            DeliveryEvent(
                notice_id=notice.id,  # type: ignore[arg-type]
                at=now,
                source="casework",
                status=OPT_OUT_APPLIED,
                detail="the family's SMS consent was withdrawn",
                dedupe_key=f"opt-out:{notice.id}",
            )
        )
        next_channel = ""
        if family is not None:
            if family.sms_consent and family.phone == notice.to_address:
                family.sms_consent = False
                family.preferred_channels = ",".join(c for c in family.channels if c != "sms") or (
                    "email" if family.email else family.preferred_channels
                )
                moved = readdress_unsent(session, case.id, family)  # type: ignore[arg-type]
                session.add(
                    audit_event(
                        case,
                        actor=STOP_ACTOR,
                        event="sms_opt_out",
                        at=now,
                        from_state=case.state,
                        data={
                            "sms_consent": CONSENT_WORDS[False],
                            "sms_consent_was": CONSENT_WORDS[True],
                            "notices_readdressed": moved,
                        },
                    )
                )
            if family.email:
                next_channel = "email"
                insert_notices(
                    session,
                    [
                        outbox_row(
                            key=f"notice:{notice.id}:next-channel:email",
                            case_id=case.id,
                            template=notice.template,
                            recipient="family",
                            channel="email",
                            address=family.email,
                            context=dict(notice.context or {}),
                            not_before=now,
                            now=now,
                            deadline_id=notice.deadline_id,
                        )
                    ],
                )
        words = (
            "The family replied STOP to our text messages, so we will not text them again"
            " unless they ask. "
            + (
                "The message we could not text was sent by email instead."
                if next_channel
                else "We have no other way to send them messages: please call them."
            )
        )
        session.add(
            CaseNote(
                case_id=case.id,  # type: ignore[arg-type]
                kind="note",
                text=words,
                shared=False,
                recorded_at=now,
                recorded_by=STOP_ACTOR.id,
            )
        )
        insert_notices(
            session,
            [
                outbox_row(
                    key=f"notice:{notice.id}:opted-out:adviser",
                    case_id=case.id,
                    template="family_opted_out",
                    recipient="adviser",
                    channel="email",
                    address=settings.team.adviser_email,
                    context={
                        "notice_kind": "escalation",
                        "reference": case.reference,
                        "case_link": f"{settings.public_url.rstrip('/')}/cases/{case.reference}",
                        "next_channel": next_channel,
                        "service_name": settings.service.name,
                    },
                    not_before=now,
                    now=now,
                )
            ],
        )
        session.commit()
