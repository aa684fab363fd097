"""A new request: the one intake form every door fills in, and the use case that opens it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from casework import deadlines as dl
from casework.cases.context import Actor
from casework.cases.errors import ValidationFailed
from casework.cases.fields import MAX_SHORT_TEXT, MAX_TEXT, EventField, check_date
from casework.cases.unit import Clocks, begin_as_writer, record_change, require_aware
from casework.cases.words import DECISION_TYPE_WORDS
from casework.config import Settings
from casework.contacts import (
    ContactError,
    cannot_text_warning,
    check_postal_address,
    normalise_email,
    normalise_phone,
)
from casework.deadlines import DeadlineKind
from casework.models import Case, Person, ReferenceCounter
from casework.states import CaseKind, CaseState

DECISION_TYPES = tuple(DECISION_TYPE_WORDS)
INTAKE_CHANNELS = ("helpline", "email")
NOTICE_CHANNELS = ("sms", "email", "post")
ADDRESS_FIELDS = ("address_line_1", "address_line_2", "address_town", "address_postcode")

CHANNEL_CHOICE = "choose text message, email, post, or more than one."

DECISION_DATE = EventField("decision_date", "date", "The date of the LA's decision letter")

# Words for each intake field, so an error names the field as the form does.
INTAKE_WORDS: dict[str, str] = {
    "kind": "Kind of request",
    "name": "Family contact's name",
    "phone": "Telephone number",
    "email": "Email address",
    "channel": "How the request came in",
    "decision_date": DECISION_DATE.label,
    "decision_type": "What the LA decided",
    "placement_only": "Appeal only about the school or college named",
    "summary": "Summary",
    "child_name": "Child or young person's name",
    "preferred_channels": "How the family wants to hear from us",
    "reg32_info_given": "The decision letter gave the mediation information",
    "address_line_1": "Address line 1",
    "address_line_2": "Address line 2",
    "address_town": "Town or city",
    "address_postcode": "Postcode",
}


class IntakeInvalid(ValidationFailed):
    """Every problem with an intake at once, so a form can list them all."""

    def __init__(self, errors: dict[str, str]) -> None:
        first = next(iter(errors))
        super().__init__(" ".join(errors.values()), field=first)
        self.errors = errors


@dataclass
class Intake:
    """What an adviser takes down on the first call or email."""

    kind: str
    name: str
    phone: str
    channel: str
    email: str = ""
    decision_date: dt.date | str | None = None
    decision_type: str | None = None
    health_care: bool = False
    placement_only: bool = False
    summary: str = ""
    child_name: str = ""
    preferred_channels: str = "sms,email"
    sms_consent: bool = True
    reg32_info_given: bool | None = None
    # The owning adviser's email; empty means the signed-in person opening the case.
    adviser: str = ""
    # The postal address: needed when the family hears from us by post.
    address_line_1: str = ""
    address_line_2: str = ""
    address_town: str = ""
    address_postcode: str = ""


@dataclass(frozen=True)
class CheckedIntake:
    """An intake that passed every rule, with contacts normalised."""

    kind: CaseKind
    name: str
    phone: str
    email: str
    channel: str
    decision_date: dt.date | None
    decision_type: str | None
    health_care: bool
    placement_only: bool
    summary: str
    child_name: str
    channels: tuple[str, ...]
    sms_consent: bool
    reg32_info_given: bool | None
    address: dict[str, str]
    # What the adviser should know but that does not stop the case opening (texts
    # chosen for a number we cannot text).
    warnings: tuple[str, ...] = ()


def phone_warnings(phone: str, channels: Sequence[str]) -> tuple[str, ...]:
    """The adviser saving a number the family's chosen texts cannot reach is told so,
    as the family will hear only by the other ways chosen (see ``can_text``)."""
    words = cannot_text_warning(phone) if "sms" in channels else ""
    return (f"{INTAKE_WORDS['phone']}: {words}.",) if words else ()


def check_intake(intake: Intake, *, today: dt.date) -> CheckedIntake:
    """All of intake's rules; raises :class:`IntakeInvalid` listing every problem in words."""
    errors: dict[str, str] = {}

    def fail(name: str, message: str) -> None:
        errors.setdefault(name, f"{INTAKE_WORDS[name]}: {message}")

    if intake.kind not in CaseKind.__members__:
        fail("kind", "choose mediation or disagreement resolution.")
    if intake.channel not in INTAKE_CHANNELS:
        fail("channel", "choose the helpline or email.")
    name = (intake.name or "").strip()
    if not name:
        fail("name", "this is needed.")
    for field_name, value, limit in (
        ("name", name, MAX_SHORT_TEXT),
        ("child_name", intake.child_name or "", MAX_SHORT_TEXT),
        ("summary", intake.summary or "", MAX_TEXT),
    ):
        if len(value) > limit:
            fail(field_name, f"keep it under {limit:,} characters.")
        if "\x00" in value:
            fail(field_name, "it contains a character that cannot be stored.")
    phone = email = ""
    if intake.channel == "email" and not (intake.phone or "").strip():
        fail(
            "phone",
            "an email request must include a contact telephone number so an adviser can ring"
            " back; ask the family for one before opening the case.",
        )
    else:
        try:
            phone = normalise_phone(intake.phone or "")
        except ContactError as exc:
            fail("phone", exc.message + ".")
    try:
        email = normalise_email(intake.email or "")
    except ContactError as exc:
        fail("email", exc.message + ".")
    decision: dt.date | None = None
    if intake.decision_date not in (None, ""):
        try:
            raw = intake.decision_date
            decision = raw if isinstance(raw, dt.date) else dt.date.fromisoformat(str(raw).strip())
            check_date(DECISION_DATE, decision, today)
        except ValueError:
            fail("decision_date", "give a real date, for example 2026-10-20.")
        except ValidationFailed as exc:
            errors.setdefault("decision_date", str(exc))
    decision_type = intake.decision_type or None
    if decision_type is not None and decision_type not in DECISION_TYPES:
        fail("decision_type", "choose one of the LA decisions listed.")
    if intake.kind == CaseKind.disagreement and intake.placement_only:
        fail(
            "placement_only",
            "this applies only to mediation before an appeal about the school or college named.",
        )
    channels = tuple(c.strip() for c in (intake.preferred_channels or "").split(",") if c.strip())
    if not channels or any(c not in NOTICE_CHANNELS for c in channels):
        fail("preferred_channels", CHANNEL_CHOICE)
    elif channels == ("email",) and not email and "email" not in errors:
        fail("email", "give an address for email notices, or choose text messages.")
    address, problems = check_postal_address(
        intake.address_line_1,
        intake.address_line_2,
        intake.address_town,
        intake.address_postcode,
        required="post" in channels,
    )
    for field_name, message in problems.items():
        fail(field_name, message + ".")
    if errors:
        raise IntakeInvalid(errors)
    return CheckedIntake(
        kind=CaseKind(intake.kind),
        name=name,
        phone=phone,
        email=email,
        channel=intake.channel,
        decision_date=decision,
        decision_type=decision_type,
        health_care=bool(intake.health_care),
        placement_only=bool(intake.placement_only),
        summary=(intake.summary or "").strip(),
        child_name=(intake.child_name or "").strip(),
        channels=channels,
        sms_consent=bool(intake.sms_consent),
        reg32_info_given=intake.reg32_info_given,
        address=address,
        warnings=phone_warnings(phone, channels),
    )


@dataclass(frozen=True)
class PossibleDuplicate:
    """An open case reached by the same phone or email: maybe the same family again."""

    reference: str
    name: str
    state: str
    matched: str  # "phone", "email" or "phone and email", in words

    def words(self) -> str:
        from casework.cases.words import state_words

        return (
            f"{self.reference} ({self.name}, {state_words(self.state).lower()}) has the same"
            f" {self.matched}."
        )


def possible_duplicates(session: Session, intake: Intake) -> list[PossibleDuplicate]:
    """Open cases whose family has this intake's phone or email: a warning, not a refusal.

    The phone is compared in its normalised (E.164) form, as every phone is stored,
    so "07911 123456" and "+44 7911 123456" match; the email without regard to case.
    A closed or withdrawn case is no duplicate: the family may well come back. A
    number or address that cannot be read matches nothing (intake's own check says
    what is wrong with it).
    """
    from sqlalchemy import func, or_, select

    try:
        phone = normalise_phone(intake.phone or "")
    except ContactError:
        phone = ""
    try:
        email = normalise_email(intake.email or "").lower()
    except ContactError:
        email = ""
    matches = []
    if phone:
        matches.append(col(Person.phone) == phone)
    if email:
        matches.append(func.lower(col(Person.email)) == email)
    if not matches:
        return []
    rows = session.execute(
        select(
            col(Case.reference),
            col(Case.state),
            col(Person.name),
            col(Person.phone),
            col(Person.email),
        )
        .join(Person, (col(Person.case_id) == Case.id) & (col(Person.role) == "family"))
        .where(col(Case.state).not_in([CaseState.closed, CaseState.withdrawn]), or_(*matches))
        .order_by(col(Case.id))
        .limit(20)
    ).all()
    out = []
    for reference, state, name, their_phone, their_email in rows:
        same = [
            what
            for what, hit in (
                ("phone number", bool(phone) and their_phone == phone),
                ("email address", bool(email) and (their_email or "").lower() == email),
            )
            if hit
        ]
        out.append(PossibleDuplicate(reference, name, state, " and ".join(same)))
    return out


@dataclass(frozen=True)
class IntakeReview:
    """An intake that passed every rule, and the open cases it may duplicate."""

    checked: CheckedIntake
    duplicates: list[PossibleDuplicate]

    @property
    def warnings(self) -> list[str]:
        """What to check before opening, besides the possible duplicates."""
        return list(self.checked.warnings)


def review_intake(session: Session, intake: Intake, *, now: dt.datetime) -> IntakeReview:
    """Check an intake before it is opened: every problem at once, or what will be opened
    and the open cases it may duplicate. Nothing is written."""
    now = require_aware(now)
    checked = check_intake(intake, today=dl.local_date(now))
    return IntakeReview(checked, possible_duplicates(session, intake))


@dataclass(frozen=True)
class Opened:
    """A case opened, with the open cases it may duplicate (a warning, never a refusal),
    and what else the adviser should check (``warnings``, kept on the open event too)."""

    case: Case
    duplicates: list[PossibleDuplicate]
    warnings: list[str]


def owning_adviser(intake: Intake, actor: Actor) -> str | None:
    """Whoever takes the call owns the case unless the intake names someone else.

    A script or the scheduler opening a case owns nothing, so the case waits unowned
    in the list until a manager assigns it.
    """
    named = (intake.adviser or "").strip().lower()
    if named:
        return named[:320]
    kind, _, who = actor.id.partition(":")
    if kind == "user" and who and not actor.is_provider:
        return who.lower()
    return None


def next_reference(session: Session, prefix: str, year: int) -> str:
    """MED-2026-0042: a per-prefix, per-year counter that two intakes can't share."""
    bump = (
        update(ReferenceCounter)
        .where(col(ReferenceCounter.prefix) == prefix, col(ReferenceCounter.year) == year)
        .values(last=col(ReferenceCounter.last) + 1)
        .returning(col(ReferenceCounter.last))
    )
    number = session.execute(bump).scalar_one_or_none()
    if number is None:
        try:
            with session.begin_nested():
                session.add(ReferenceCounter(prefix=prefix, year=year, last=1))
            number = 1
        except IntegrityError:
            number = session.execute(bump).scalar_one()
    return f"{prefix}-{year}-{number:04d}"


def open_case(
    session: Session, intake: Intake, *, now: dt.datetime, actor: Actor, settings: Settings
) -> Case:
    """Record a new request and start its clocks; returns the committed case."""
    return open_case_reviewed(session, intake, now=now, actor=actor, settings=settings).case


def open_case_reviewed(
    session: Session, intake: Intake, *, now: dt.datetime, actor: Actor, settings: Settings
) -> Opened:
    """Record a new request and start its clocks; with the open cases it may duplicate.

    The duplicates are looked up before the new case exists (it would match itself)
    and reported, not refused: two children of one family are two cases.
    """
    now = require_aware(now)
    today = dl.local_date(now)
    checked = check_intake(intake, today=today)
    duplicates = possible_duplicates(session, intake)
    # The lookup's read ends here; the writes wait their turn behind another intake's.
    begin_as_writer(session)
    prefix = (
        settings.reference_prefix_mediation
        if checked.kind == CaseKind.mediation
        else settings.reference_prefix_disagreement
    )
    try:
        case = Case(
            reference=next_reference(session, prefix, today.year),
            kind=checked.kind,
            state=CaseState.requested,
            intake_channel=checked.channel,
            opened_at=now,
            updated_at=now,
            summary=checked.summary,
            child_name=checked.child_name,
            decision_date=checked.decision_date,
            decision_type=checked.decision_type,
            health_care=checked.health_care,
            placement_only=checked.placement_only,
            reg32_info_given=checked.reg32_info_given,
            adviser=owning_adviser(intake, actor),
        )
        session.add(case)
        session.flush()
        family = Person(
            case_id=case.id,  # type: ignore[arg-type]
            name=checked.name,
            phone=checked.phone,
            email=checked.email,
            preferred_channels=",".join(checked.channels),
            sms_consent=checked.sms_consent,
            address_line_1=checked.address["address_line_1"],
            address_line_2=checked.address["address_line_2"],
            address_town=checked.address["address_town"],
            address_postcode=checked.address["address_postcode"],
        )
        session.add(family)
        # Every family gets its own page from the start: the link goes in its notices.
        from casework.cases.family import first_link  # family -> contact -> intake

        first_link(session, case, now=now, actor=actor, settings=settings)
        data = {
            "kind": checked.kind.value,
            "decision_date": checked.decision_date,
            "decision_type": checked.decision_type,
            "health_care": checked.health_care,
            "placement_only": checked.placement_only,
        }
        if checked.reg32_info_given is not None:
            data["reg32_info_given"] = checked.reg32_info_given
        if checked.warnings:
            data["warning"] = " ".join(checked.warnings)
        clocks = Clocks(session, case, now)
        # A placement-only appeal needs no mediation advice, so the reg 33 window
        # does not apply to it (Children and Families Act 2014 s.55).
        if (
            checked.kind == CaseKind.mediation
            and checked.decision_date is not None
            and not checked.placement_only
        ):
            clocks.open(dl.contact_adviser_deadline(checked.decision_date))
        if checked.kind == CaseKind.disagreement:
            target = settings.disagreement_targets.advice_working_days
            clocks.open(
                dl.service_target(
                    DeadlineKind.dr_advice,
                    today,
                    target,
                    "request received",
                    calendar=settings.calendars.service,
                )
            )
        record_change(
            session,
            case,
            actor=actor,
            event="open",
            at=now,
            from_state=None,
            settings=settings,
            data=data,
            channel=checked.channel,
            family=family,
            clocks=clocks,
        )
        session.commit()
    except Exception:
        session.rollback()
        raise
    return Opened(case, duplicates, list(checked.warnings))
