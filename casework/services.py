"""The use cases: open a case, advance it, allocate a provider, answer an allocation.

Each use case takes ``now`` and an :class:`Actor` and runs as one transaction:
load → guard → transition → audit event → open/meet/cancel deadlines → commit.
Any failure rolls everything back, so a case is never left moved without its audit
event or its clocks. Notices are queued in the same transaction through the hook
registered by ``casework.notices`` (record now, send later).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Session, col

from casework import deadlines as dl
from casework.config import Settings
from casework.contacts import ContactError, normalise_email, normalise_phone
from casework.deadlines import Clock, DeadlineKind
from casework.models import (
    MISSED_OUTSTANDING,
    Allocation,
    AllocationStatus,
    Case,
    CaseEvent,
    Deadline,
    DeadlineStatus,
    Person,
    Provider,
    ReferenceCounter,
)
from casework.states import (
    FINAL_STATES,
    PROVIDER_EVENTS,
    CaseKind,
    CaseState,
    EventField,
    TransitionNotAllowed,
    bound_flow,
    event_fields,
    flow_for,
)

DECISION_TYPES = ("refuse_assessment", "refuse_plan", "plan_contents", "refuse_amend", "cease_plan")
INTAKE_CHANNELS = ("helpline", "email")
CERTIFICATE_KINDS = (
    DeadlineKind.certificate_after_decline,
    DeadlineKind.certificate_not_arranged,
    DeadlineKind.certificate_after_meeting,
)


# --- Errors the edges turn into messages ---------------------------------------------


class CaseworkError(Exception):
    """A refusal a person can act on; ``str()`` says what to do."""

    exit_code = 1
    http_status = 400


class NotFound(CaseworkError):
    exit_code = 3
    http_status = 404


class ValidationFailed(CaseworkError):
    """Bad input; ``field`` names it so a form can show the message beside it."""

    exit_code = 2
    http_status = 422

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class TransitionRefused(CaseworkError):
    exit_code = 2
    http_status = 409

    def __init__(self, message: str, allowed: list[str]) -> None:
        super().__init__(message)
        self.allowed = allowed


class Conflict(CaseworkError):
    """Someone else changed the case first; reload and try again."""

    exit_code = 4
    http_status = 409


@contextmanager
def _case_transaction(session: Session, reference: str) -> Iterator[None]:
    """Roll back on any failure; report a lost race between two writers as a Conflict.

    Two writers on one case: the version check (or SQLite's lock) lets one win. On
    PostgreSQL the loser's ``UPDATE ... WHERE version = n`` matches no row
    (StaleDataError). On SQLite in WAL mode the loser read an older snapshot and
    cannot upgrade it to a write ("database is locked"); that is the same race.
    Any other OperationalError is a real failure and is re-raised unchanged.
    """
    try:
        yield
    except (StaleDataError, OperationalError) as exc:
        session.rollback()
        if isinstance(exc, OperationalError) and not any(
            word in str(exc.orig).lower() for word in ("locked", "busy")
        ):
            raise
        raise Conflict(
            f"{reference} was changed by someone else at the same moment; reload it and try again"
        ) from exc
    except Exception:
        session.rollback()
        raise


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is acting and through which channel; every audit event names both."""

    id: str
    role: str = "adviser"
    channel: str = "cli"
    provider_id: int | None = None


SYSTEM = Actor(id="system:scheduler", role="system", channel="scheduler")


@dataclass
class TransitionContext:
    """What a hook needs to know about a change that is about to be committed."""

    case: Case
    family: Person | None
    event: str
    from_state: str | None
    to_state: str
    data: dict[str, Any]
    now: dt.datetime
    actor: Actor
    settings: Settings
    opened: list[Deadline] = field(default_factory=list)
    provider: Provider | None = None


# --- Small helpers -------------------------------------------------------------------


def _require_aware(now: dt.datetime) -> dt.datetime:
    if now.tzinfo is None:
        raise ValidationFailed(
            "the time of an event must include its zone (e.g. 2026-11-27T10:00Z)"
        )
    return now.astimezone(dt.UTC)


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "y", "on"):
        return True
    if value in ("0", "false", "no", "n", "off", ""):
        return False
    raise ValueError("give yes or no")


def parse_event_data(
    kind: CaseKind | str, event: str, raw: Mapping[str, Any], *, today: dt.date
) -> dict[str, Any]:
    """Typed data for ``event`` from strings (CLI ``--set``, form fields) or typed values.

    Unknown keys are refused (a typo must not be silently ignored on a legal record),
    dates default to ``today`` where the event says so, and required fields are named.
    """
    fields = {f.name: f for f in event_fields(kind, event)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        takes = ", ".join(fields) or "no data"
        raise ValidationFailed(
            f"{event} does not take {', '.join(unknown)}; it takes: {takes}", field=unknown[0]
        )
    parsed: dict[str, Any] = {}
    for name, spec in fields.items():
        value = raw.get(name)
        if value is None or (isinstance(value, str) and value.strip() == ""):
            if spec.default == "today":
                parsed[name] = today
            elif spec.default is not None:
                parsed[name] = spec.default
            elif spec.required:
                raise ValidationFailed(f"{event} needs {name}: {spec.help}", field=name)
            continue
        parsed[name] = _coerce(event, spec, value)
    return parsed


def _coerce(event: str, spec: EventField, value: Any) -> Any:
    try:
        if spec.type == "date":
            if isinstance(value, dt.date):
                return value
            return dt.date.fromisoformat(str(value).strip())
        if spec.type == "bool":
            return value if isinstance(value, bool) else _parse_bool(str(value))
        if spec.type == "choice":
            text = str(value).strip()
            if text not in spec.choices:
                raise ValueError(f"choose one of {', '.join(spec.choices)}")
            return text
        return str(value).strip()
    except ValueError as exc:
        hint = "use YYYY-MM-DD" if spec.type == "date" else str(exc)
        raise ValidationFailed(
            f"{event}: {spec.name}={value!r} is not valid; {hint}", field=spec.name
        ) from exc


def _jsonable(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in data.items()}


def _next_reference(session: Session, prefix: str, year: int) -> str:
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


def get_case(session: Session, reference: str) -> Case:
    case = session.execute(
        select(Case).where(col(Case.reference) == reference.strip().upper())
    ).scalar_one_or_none()
    if case is None:
        raise NotFound(f"no case with reference {reference!r}; `casework case list` shows them")
    return case


def family_of(session: Session, case: Case) -> Person | None:
    return session.execute(
        select(Person).where(col(Person.case_id) == case.id, col(Person.role) == "family")
    ).scalar_one_or_none()


# Statements built once: building a select() costs more Python time than running it.
_LIVE_DEADLINES = select(Deadline).where(
    col(Deadline.case_id) == bindparam("case_id"),
    (col(Deadline.status) == DeadlineStatus.open)
    | (
        (col(Deadline.status) == DeadlineStatus.missed)
        & (
            col(Deadline.next_action_at).is_not(None)
            | (col(Deadline.closed_reason) == MISSED_OUTSTANDING)
        )
    ),
)
_CASE_FAMILY_PROVIDER = (
    select(Case, Person, Provider)
    .outerjoin(Person, (col(Person.case_id) == Case.id) & (col(Person.role) == "family"))
    .outerjoin(Provider, col(Provider.id) == Case.provider_id)
    .where(col(Case.reference) == bindparam("reference"))
)


def open_deadlines(session: Session, case: Case) -> list[Deadline]:
    """The case's live clocks: open ones, and missed ones still escalating."""
    return list(session.execute(_LIVE_DEADLINES, {"case_id": case.id}).scalars())


def _add_deadline(session: Session, case: Case, clock: Clock, now: dt.datetime) -> Deadline:
    deadline = Deadline(
        case_id=case.id,  # type: ignore[arg-type]
        kind=clock.kind,
        due_date=clock.due,
        due_at=clock.due_at(),
        status=DeadlineStatus.open,
        citation=clock.citation,
        explanation=clock.explanation,
        opened_at=now,
        # The next sweep works out this clock's first reminder from the rules in
        # config, so the rules live in one place (casework.reminders).
        next_action_at=now,
    )
    session.add(deadline)
    return deadline


def _close_deadline(
    deadline: Deadline, status: DeadlineStatus, now: dt.datetime, reason: str
) -> None:
    deadline.status = status
    deadline.closed_at = now
    deadline.closed_reason = reason[:200]
    deadline.next_action_at = None


def _still_live(deadline: Deadline) -> bool:
    """A missed clock still escalating, or still outstanding (listed as late)."""
    return deadline.next_action_at is not None or deadline.closed_reason == MISSED_OUTSTANDING


def _meet(
    pending: list[Deadline],
    kinds: Iterable[DeadlineKind],
    now: dt.datetime,
    *,
    done_on: dt.date,
    reason: str,
) -> None:
    """Close the clocks of ``kinds``: met if done by their due date, else missed.

    A clock the sweep already marked missed stays missed, but its escalations stop:
    the act has now been done, late.
    """
    wanted = set(kinds)
    for deadline in pending:
        if deadline.kind not in wanted:
            continue
        if deadline.status == DeadlineStatus.open:
            on_time = done_on <= deadline.due_date
            status = DeadlineStatus.met if on_time else DeadlineStatus.missed
            suffix = "" if on_time else f" (late: done {done_on.isoformat()})"
            _close_deadline(deadline, status, now, reason + suffix)
        elif deadline.status == DeadlineStatus.missed and _still_live(deadline):
            deadline.next_action_at = None
            deadline.closed_reason = f"{reason} (late: done {done_on.isoformat()})"[:200]


def _cancel(
    pending: list[Deadline],
    now: dt.datetime,
    reason: str,
    kinds: Iterable[DeadlineKind] | None = None,
) -> None:
    """Cancel open clocks the case no longer needs; stop escalating missed ones."""
    wanted = set(kinds) if kinds is not None else None
    for deadline in pending:
        if wanted is not None and deadline.kind not in wanted:
            continue
        if deadline.status == DeadlineStatus.open:
            _close_deadline(deadline, DeadlineStatus.cancelled, now, reason)
        elif deadline.status == DeadlineStatus.missed and _still_live(deadline):
            deadline.next_action_at = None
            deadline.closed_reason = (deadline.closed_reason + f"; then {reason}")[:200]


def sync_providers(session: Session, settings: Settings) -> list[Provider]:
    """Make the providers table match config: add new ones, update details, keep history."""
    existing = {p.code: p for p in session.execute(select(Provider)).scalars()}
    configured = set()
    for pc in settings.providers:
        configured.add(pc.code)
        row = existing.get(pc.code)
        if row is None:
            row = Provider(code=pc.code, name=pc.name, email=pc.email, phone=pc.phone)
            session.add(row)
        else:
            row.name, row.email, row.phone, row.active = pc.name, pc.email, pc.phone, True
    for code, row in existing.items():
        if code not in configured:
            row.active = False
    session.commit()
    return list(session.execute(select(Provider).order_by(col(Provider.id))).scalars())


def find_provider(session: Session, name_or_code: str) -> Provider:
    wanted = name_or_code.strip().casefold()
    providers = list(session.execute(select(Provider).where(col(Provider.active))).scalars())
    for p in providers:
        if wanted in (p.code.casefold(), p.name.casefold()):
            return p
    known = (
        ", ".join(f"{p.code} ({p.name})" for p in providers) or "none: run `casework db upgrade`"
    )
    raise NotFound(f"no provider {name_or_code!r}; known providers: {known}")


# --- Open a case ---------------------------------------------------------------------


@dataclass
class Intake:
    """What an adviser takes down on the first call or email."""

    kind: str
    name: str
    phone: str
    channel: str
    email: str = ""
    decision_date: dt.date | None = None
    decision_type: str | None = None
    health_care: bool = False
    placement_only: bool = False
    summary: str = ""
    child_name: str = ""
    preferred_channels: str = "sms,email"
    sms_consent: bool = True


def validate_intake(intake: Intake) -> tuple[str, str]:
    """Normalised (phone, email), or a ValidationFailed naming the field to fix."""
    if intake.kind not in CaseKind.__members__:
        raise ValidationFailed(
            f"kind must be mediation or disagreement, not {intake.kind!r}", field="kind"
        )
    if intake.channel not in INTAKE_CHANNELS:
        raise ValidationFailed(
            f"channel must be helpline or email, not {intake.channel!r}", field="channel"
        )
    if not intake.name.strip():
        raise ValidationFailed("name: the family contact's name is required", field="name")
    if intake.channel == "email" and not intake.phone.strip():
        raise ValidationFailed(
            "phone: an email request must include a contact telephone number so an adviser"
            " can ring back; ask the family for one before opening the case",
            field="phone",
        )
    if intake.decision_type is not None and intake.decision_type not in DECISION_TYPES:
        raise ValidationFailed(
            f"decision type must be one of {', '.join(DECISION_TYPES)}", field="decision_type"
        )
    if intake.kind == CaseKind.disagreement and intake.placement_only:
        raise ValidationFailed(
            "placement_only applies to mediation cases (appeals about the school named)",
            field="placement_only",
        )
    channels = [c.strip() for c in intake.preferred_channels.split(",") if c.strip()]
    if not channels or any(c not in ("sms", "email") for c in channels):
        raise ValidationFailed(
            "preferred channels must be sms, email or both (e.g. sms,email)",
            field="preferred_channels",
        )
    try:
        phone = normalise_phone(intake.phone)
        email = normalise_email(intake.email)
    except ContactError as exc:
        raise ValidationFailed(str(exc), field=exc.field) from exc
    if "email" in channels and not email and "sms" not in channels:
        raise ValidationFailed("email: give an address for email notices", field="email")
    return phone, email


def open_case(
    session: Session, intake: Intake, *, now: dt.datetime, actor: Actor, settings: Settings
) -> Case:
    """Record a new request and start its clocks; returns the committed case."""
    now = _require_aware(now)
    phone, email = validate_intake(intake)
    today = dl.local_date(now)
    if intake.decision_date is not None and intake.decision_date > today:
        raise ValidationFailed(
            "decision_date is in the future; give the date the LA sent its decision letter",
            field="decision_date",
        )
    kind = CaseKind(intake.kind)
    prefix = (
        settings.reference_prefix_mediation
        if kind == CaseKind.mediation
        else settings.reference_prefix_disagreement
    )
    try:
        case = Case(
            reference=_next_reference(session, prefix, today.year),
            kind=kind,
            state=CaseState.requested,
            intake_channel=intake.channel,
            opened_at=now,
            updated_at=now,
            summary=intake.summary.strip(),
            child_name=intake.child_name.strip(),
            decision_date=intake.decision_date,
            decision_type=intake.decision_type,
            health_care=intake.health_care,
            placement_only=intake.placement_only,
        )
        session.add(case)
        session.flush()
        family = Person(
            case_id=case.id,  # type: ignore[arg-type]
            name=intake.name.strip(),
            phone=phone,
            email=email,
            preferred_channels=",".join(
                c.strip() for c in intake.preferred_channels.split(",") if c.strip()
            ),
            sms_consent=intake.sms_consent,
        )
        session.add(family)
        data = _jsonable(
            {
                "kind": kind.value,
                "decision_date": intake.decision_date,
                "decision_type": intake.decision_type,
                "health_care": intake.health_care,
                "placement_only": intake.placement_only,
            }
        )
        session.add(
            CaseEvent(
                case_id=case.id,  # type: ignore[arg-type]
                at=now,
                actor=actor.id,
                event="open",
                from_state=None,
                to_state=CaseState.requested,
                data=data,
                channel=intake.channel,
                note="",
            )
        )
        opened: list[Deadline] = []
        if kind == CaseKind.mediation and intake.decision_date is not None:
            opened.append(
                _add_deadline(session, case, dl.contact_adviser_deadline(intake.decision_date), now)
            )
        if kind == CaseKind.disagreement:
            target = settings.disagreement_targets.advice_working_days
            clock = dl.service_target(DeadlineKind.dr_advice, today, target, "request received")
            opened.append(_add_deadline(session, case, clock, now))
        _run_hooks(
            session,
            TransitionContext(
                case, family, "open", None, CaseState.requested, data, now, actor, settings, opened
            ),
        )
        session.commit()
    except Exception:
        session.rollback()
        raise
    return case


def _run_hooks(session: Session, ctx: TransitionContext) -> None:
    """Queue the notices the change causes, in the same transaction (record now, send later)."""
    from casework.notices import queue_event_notices

    queue_event_notices(session, ctx)


# --- Advance a case by an event ------------------------------------------------------


def describe_refusal(case: Case, event: str) -> TransitionRefused:
    """'Cannot issue_certificate: case is mediating; allowed now: record_meeting, ...'."""
    flow = flow_for(case)
    allowed = [e.id for e in flow.enabled_events()]
    known = event in {e.id for e in flow.events}  # type: ignore[attr-defined]
    if not known:
        reason = f"{event} is not an event of a {case.kind} case"
    elif event in [e.id for e in flow.allowed_events]:
        reason = _guard_reason(case, event)
    else:
        reason = f"case is {case.state}"
    allowed_text = ", ".join(allowed) or "nothing (case is closed)"
    return TransitionRefused(f"Cannot {event}: {reason}; allowed now: {allowed_text}", allowed)


def _guard_reason(case: Case, event: str) -> str:
    if event in ("choose_mediation", "schedule_meeting", "record_meeting", "allocate"):
        return f"case is {case.state} and no provider is allocated (allocate one first)"
    if event == "issue_certificate":
        return (
            f"case is {case.state} and neither a meeting nor the LA's report that it cannot"
            " arrange one in 30 days is recorded"
        )
    if event == "report_not_arranged":
        return "the LA's report that it cannot arrange the meeting is already recorded"
    return f"case is {case.state} and the event's condition is not met"


def allowed_events(case: Case) -> list[tuple[str, tuple[EventField, ...]]]:
    """The events that can happen now (guards evaluated) with the data each takes."""
    flow = flow_for(case)
    return [(e.id, event_fields(case.kind, e.id)) for e in flow.enabled_events()]


def advance(
    session: Session,
    reference: str,
    event: str,
    *,
    now: dt.datetime,
    actor: Actor,
    settings: Settings,
    data: Mapping[str, Any] | None = None,
    note: str = "",
    expected_version: int | None = None,
) -> Case:
    """Move a case by ``event``: the whole change commits, or nothing does."""
    now = _require_aware(now)
    with _case_transaction(session, reference):
        row = session.execute(
            _CASE_FAMILY_PROVIDER, {"reference": reference.strip().upper()}
        ).first()
        if row is None:
            raise NotFound(f"no case with reference {reference!r}; `casework case list` shows them")
        case, family, provider = row
        _check_actor_may_act(case, actor, event)
        if expected_version is not None and case.version != expected_version:
            raise Conflict(
                f"{case.reference} was changed by someone else (now {case.state}); reload it and"
                " try again"
            )
        today = dl.local_date(now)
        from_state = case.state
        # Everything below only changes objects in memory; one flush at commit writes
        # the case once (one version bump) and batches the rest. If the data turn out
        # to be invalid after the transition, the rollback below undoes it.
        with session.no_autoflush:
            try:
                bound_flow(case).send(event)
            except TransitionNotAllowed:
                raise describe_refusal(case, event) from None
            parsed = parse_event_data(case.kind, event, data or {}, today=today)
            pending = list(session.execute(_LIVE_DEADLINES, {"case_id": case.id}).scalars())
            opened = _apply(case, event, parsed, pending, session, now, today, settings)
            if note:
                parsed.setdefault("note", note)
            case.updated_at = now
            event_data = _jsonable(parsed)
            session.add(
                CaseEvent(
                    case_id=case.id,  # type: ignore[arg-type]
                    at=now,
                    actor=actor.id,
                    event=event,
                    from_state=from_state,
                    to_state=case.state,
                    data=event_data,
                    channel=actor.channel,
                    note=note or str(parsed.get("note", "")),
                )
            )
            _run_hooks(
                session,
                TransitionContext(
                    case,
                    family,
                    event,
                    from_state,
                    case.state,
                    event_data,
                    now,
                    actor,
                    settings,
                    opened,
                    provider,
                ),
            )
        session.commit()
    return case


def _check_actor_may_act(case: Case, actor: Actor, event: str | None = None) -> None:
    """Provider staff act only on cases allocated to their provider; others see nothing.

    They record only the provider's own steps (meetings, certificates); advising,
    choosing mediation, closing and withdrawing stay with the adviser.
    """
    if actor.role == "provider" and case.provider_id != actor.provider_id:
        raise NotFound(f"no case with reference {case.reference!r}")
    if actor.role == "provider" and event is not None and event not in PROVIDER_EVENTS:
        raise TransitionRefused(
            f"Cannot {event}: that is the adviser's step; provider staff can record"
            f" {', '.join(PROVIDER_EVENTS)}",
            [],
        )


def _not_future(event: str, name: str, day: dt.date, today: dt.date) -> None:
    if day > today:
        raise ValidationFailed(f"{event}: {name} {day.isoformat()} is in the future", field=name)


def _apply(
    case: Case,
    event: str,
    data: dict[str, Any],
    pending: list[Deadline],
    session: Session,
    now: dt.datetime,
    today: dt.date,
    settings: Settings,
) -> list[Deadline]:
    """Write the event's data onto the case and open, meet or cancel its clocks."""
    opened: list[Deadline] = []

    def open_clock(clock: Clock) -> None:
        opened.append(_add_deadline(session, case, clock, now))

    kind = CaseKind(case.kind)
    if event == "withdraw":
        case.withdrawn_reason = data["reason"]
        _cancel(pending, now, "case withdrawn")
        allocation = live_allocation(session, case)
        if allocation is not None:  # the provider has nothing left to accept or run
            allocation.status = AllocationStatus.ended
            allocation.responded_at = allocation.responded_at or now
        return opened

    if kind == CaseKind.disagreement:
        targets = settings.disagreement_targets
        if event == "advise":
            _meet(pending, [DeadlineKind.dr_advice], now, done_on=today, reason="advice given")
            open_clock(
                dl.service_target(
                    DeadlineKind.dr_allocation,
                    today,
                    targets.allocation_working_days,
                    "advice given",
                )
            )
        elif event == "allocate":
            _meet(
                pending,
                [DeadlineKind.dr_allocation],
                now,
                done_on=today,
                reason="provider allocated",
            )
            open_clock(
                dl.service_target(
                    DeadlineKind.dr_meeting,
                    today,
                    targets.meeting_working_days,
                    "provider allocated",
                )
            )
        elif event == "return_to_adviser":
            allocation = live_allocation(session, case)
            if allocation is not None and allocation.status != AllocationStatus.declined:
                allocation.status = AllocationStatus.ended
                allocation.responded_at = allocation.responded_at or now
            case.provider_id = None
            _cancel(
                pending,
                now,
                "returned to the adviser for re-allocation",
                [
                    DeadlineKind.dr_meeting,
                    DeadlineKind.scheduled_meeting,
                    DeadlineKind.allocation_acceptance,
                ],
            )
            open_clock(
                dl.service_target(
                    DeadlineKind.dr_allocation,
                    today,
                    targets.allocation_working_days,
                    "returned for re-allocation",
                )
            )
        elif event == "schedule_meeting":
            _schedule_meeting(case, data, pending, now, today, open_clock, event)
        elif event == "record_meeting":
            _record_meeting_data(case, data, event, today)
            _meet(
                pending,
                [DeadlineKind.dr_meeting, DeadlineKind.scheduled_meeting],
                now,
                done_on=data["meeting_held_on"],
                reason="meeting held",
            )
        elif event == "close":
            case.close_outcome = data["outcome"]
            _cancel(pending, now, f"case closed: {data['outcome']}")
        return opened

    # Mediation (advise and confirm_appeal_ready move no clock)
    if event == "mark_exempt":
        decision = _need_decision_date(case, event)
        case.placement_only = True
        _meet(
            pending,
            [DeadlineKind.contact_adviser],
            now,
            done_on=today,
            reason="family advised: exempt",
        )
        clock = dl.appeal_clock(decision)
        case.appeal_due = clock.due
        open_clock(clock)
    elif event == "choose_mediation":
        la_told = data["la_told_on"]
        _not_future(event, "la_told_on", la_told, today)
        _not_before_decision(case, event, "la_told_on", la_told)
        case.la_told_on = la_told
        case.health_care = bool(data.get("health_care", case.health_care)) or bool(
            data.get("health_only")
        )
        case.health_only = bool(data.get("health_only", False))
        icb_told = data.get("icb_told_on")
        if icb_told is not None:
            _not_future(event, "icb_told_on", icb_told, today)
        case.icb_told_on = icb_told
        _meet(
            pending,
            [DeadlineKind.contact_adviser],
            now,
            done_on=today,
            reason="family chose mediation",
        )
        if case.health_only:
            told = case.icb_told_on or dl.add_working_days(la_told, 3)
            open_clock(dl.mediation_meeting_deadline(told, health_only=True))
        else:
            open_clock(dl.mediation_meeting_deadline(la_told))
        if case.health_care and case.icb_told_on is None:
            open_clock(dl.icb_notification_deadline(la_told))
    elif event == "decline":
        declined_on = data["declined_on"]
        _not_future(event, "declined_on", declined_on, today)
        _not_before_decision(case, event, "declined_on", declined_on)
        case.declined_on = declined_on
        _meet(
            pending,
            [DeadlineKind.contact_adviser],
            now,
            done_on=today,
            reason="family declined mediation",
        )
        open_clock(dl.certificate_after_decline(declined_on))
    elif event == "schedule_meeting":
        _schedule_meeting(case, data, pending, now, today, open_clock, event)
    elif event == "record_meeting":
        _record_meeting_data(case, data, event, today)
        held = data["meeting_held_on"]
        _meet(
            pending,
            [DeadlineKind.mediation_meeting, DeadlineKind.scheduled_meeting],
            now,
            done_on=held,
            reason="mediation meeting held",
        )
        # A corrected (or second) meeting record replaces the clocks of the earlier one.
        _cancel(
            pending,
            now,
            "meeting record replaced",
            [
                DeadlineKind.certificate_after_meeting,
                DeadlineKind.agreement_implemented,
                DeadlineKind.icb_tells_la_of_agreement,
            ],
        )
        open_clock(dl.certificate_after_meeting(held))
        if data["outcome"] in ("agreement", "partial"):
            open_clock(dl.agreement_implementation(held))
            if case.health_only:
                open_clock(dl.icb_tells_la_of_agreement(held))
    elif event == "report_not_arranged":
        told = data["told_on"]
        _not_future(event, "told_on", told, today)
        case.not_arranged_reported_on = told
        _cancel(
            pending,
            now,
            "LA reported it cannot arrange the meeting within 30 days",
            [DeadlineKind.mediation_meeting],
        )
        open_clock(dl.certificate_not_arranged(told))
    elif event == "issue_certificate":
        decision = _need_decision_date(case, event)
        issued = data["certificate_on"]
        _not_future(event, "certificate_on", issued, today)
        if issued < decision:
            raise ValidationFailed(
                "issue_certificate: certificate_on is before the LA's decision date",
                field="certificate_on",
            )
        case.certificate_on = issued
        derived = _certificate_type(case)
        chosen = data.get("certificate_type") or derived
        if chosen != derived:
            raise ValidationFailed(
                f"issue_certificate: this case's certificate is {derived!r} (from what is"
                f" recorded), not {chosen!r}; leave certificate_type out",
                field="certificate_type",
            )
        case.certificate_type = chosen
        data["certificate_type"] = case.certificate_type
        _meet(pending, CERTIFICATE_KINDS, now, done_on=issued, reason="certificate issued")
        # The mediation stage is over: its remaining clocks no longer apply.
        _cancel(
            pending,
            now,
            "certificate issued: the mediation stage is over",
            [
                DeadlineKind.icb_notified,
                DeadlineKind.mediation_meeting,
                DeadlineKind.scheduled_meeting,
            ],
        )
        clock = dl.appeal_clock(decision, issued)
        case.appeal_due = clock.due
        open_clock(clock)
    elif event == "close":
        outcome = data["outcome"]
        case.close_outcome = outcome
        if outcome == "appeal_lodged":
            _meet(pending, [DeadlineKind.appeal], now, done_on=today, reason="appeal lodged")
        _cancel(pending, now, f"case closed: {outcome}")
    return opened


def _need_decision_date(case: Case, event: str) -> dt.date:
    if case.decision_date is None:
        raise ValidationFailed(
            f"{event} needs the LA's decision date to work out the appeal deadline; set it with"
            " `casework case update REF --decision-date YYYY-MM-DD`",
            field="decision_date",
        )
    return case.decision_date


def _certificate_type(case: Case) -> str:
    if case.meeting_held_on is not None:
        return "mediation_held"
    if case.not_arranged_reported_on is not None:
        return "not_arranged"
    return "declined"


def _schedule_meeting(
    case: Case,
    data: dict[str, Any],
    pending: list[Deadline],
    now: dt.datetime,
    today: dt.date,
    open_clock: Callable[[Clock], None],
    event: str,
) -> None:
    meeting_on = data["meeting_on"]
    if meeting_on < today:
        raise ValidationFailed(
            f"{event}: meeting_on {meeting_on.isoformat()} is in the past; to record a meeting"
            " that took place use record_meeting",
            field="meeting_on",
        )
    time_text = data.get("meeting_time") or None
    if time_text and not re.fullmatch(r"([01]?\d|2[0-3]):[0-5]\d", time_text):
        raise ValidationFailed(
            f"{event}: meeting_time must be HH:MM, e.g. 10:00", field="meeting_time"
        )
    _cancel(pending, now, "meeting rearranged", [DeadlineKind.scheduled_meeting])
    case.meeting_on = meeting_on
    case.meeting_time = time_text
    open_clock(dl.scheduled_meeting(meeting_on, time_text))


def _not_before_decision(case: Case, event: str, name: str, day: dt.date) -> None:
    """A step of the mediation path cannot come before the LA's decision it follows."""
    if case.decision_date is not None and day < case.decision_date:
        raise ValidationFailed(
            f"{event}: {name} {day.isoformat()} is before the LA's decision"
            f" ({case.decision_date.isoformat()}); check the date",
            field=name,
        )


def _record_meeting_data(case: Case, data: dict[str, Any], event: str, today: dt.date) -> None:
    held = data["meeting_held_on"]
    _not_future(event, "meeting_held_on", held, today)
    if case.la_told_on is not None and held < case.la_told_on:
        raise ValidationFailed(
            f"{event}: meeting_held_on {held.isoformat()} is before the LA was told"
            f" ({case.la_told_on.isoformat()}); check the date",
            field="meeting_held_on",
        )
    if data["outcome"] in ("agreement", "partial") and not data.get("agreement"):
        raise ValidationFailed(
            f"{event}: an {data['outcome']} outcome needs the agreement in writing (agreement=...)",
            field="agreement",
        )
    case.meeting_held_on = held
    case.meeting_outcome = data["outcome"]
    case.agreement = data.get("agreement") or None


# --- Update intake facts ---------------------------------------------------------------


def update_case_facts(
    session: Session,
    reference: str,
    *,
    now: dt.datetime,
    actor: Actor,
    settings: Settings,
    decision_date: dt.date | None = None,
    decision_type: str | None = None,
    icb_told_on: dt.date | None = None,
    agreement_done_on: dt.date | None = None,
    note: str = "",
) -> Case:
    """Correct or add facts learnt after intake: the LA's decision, the ICB being told,
    the LA carrying out what was agreed at mediation (which meets that clock).

    The family's 2-month window is recomputed from a new decision date; the old
    clock is cancelled, not edited, so the history shows both. Recording the day
    the LA told the ICB meets that clock.
    """
    now = _require_aware(now)
    with _case_transaction(session, reference):
        case = get_case(session, reference)
        with session.no_autoflush:
            _check_actor_may_act(case, actor)
            if case.state in FINAL_STATES:
                raise TransitionRefused(f"Cannot update {case.reference}: case is {case.state}", [])
            today = dl.local_date(now)
            changed: dict[str, Any] = {}
            if decision_type is not None:
                if decision_type not in DECISION_TYPES:
                    raise ValidationFailed(
                        f"decision type must be one of {', '.join(DECISION_TYPES)}",
                        field="decision_type",
                    )
                case.decision_type = decision_type
                changed["decision_type"] = decision_type
            opened: list[Deadline] = []
            if decision_date is not None and decision_date != case.decision_date:
                if decision_date > today:
                    raise ValidationFailed("decision_date is in the future", field="decision_date")
                if case.certificate_on is not None or case.appeal_due is not None:
                    raise ValidationFailed(
                        "the appeal deadline is already set from this decision date; withdraw and"
                        " reopen if the decision itself was wrong",
                        field="decision_date",
                    )
                case.decision_date = decision_date
                changed["decision_date"] = decision_date.isoformat()
                if case.kind == CaseKind.mediation and case.state in (
                    CaseState.requested,
                    CaseState.advised,
                ):
                    pending = open_deadlines(session, case)
                    _cancel(pending, now, "decision date corrected", [DeadlineKind.contact_adviser])
                    opened.append(
                        _add_deadline(
                            session, case, dl.contact_adviser_deadline(decision_date), now
                        )
                    )
            if icb_told_on is not None:
                if icb_told_on > today:
                    raise ValidationFailed("icb_told_on is in the future", field="icb_told_on")
                case.icb_told_on = icb_told_on
                changed["icb_told_on"] = icb_told_on.isoformat()
                _meet(
                    open_deadlines(session, case),
                    [DeadlineKind.icb_notified],
                    now,
                    done_on=icb_told_on,
                    reason="LA told the ICB",
                )
            if agreement_done_on is not None:
                if agreement_done_on > today:
                    raise ValidationFailed(
                        "agreement_done_on is in the future", field="agreement_done_on"
                    )
                changed["agreement_done_on"] = agreement_done_on.isoformat()
                _meet(
                    open_deadlines(session, case),
                    [DeadlineKind.agreement_implemented, DeadlineKind.icb_tells_la_of_agreement],
                    now,
                    done_on=agreement_done_on,
                    reason="the LA did what was agreed",
                )
            if not changed:
                raise ValidationFailed(
                    "nothing to update: give --decision-date, --decision-type, --icb-told-on"
                    " or --agreement-done-on"
                )
            case.updated_at = now
            session.add(
                CaseEvent(
                    case_id=case.id,  # type: ignore[arg-type]
                    at=now,
                    actor=actor.id,
                    event="update",
                    from_state=case.state,
                    to_state=case.state,
                    data=changed,
                    channel=actor.channel,
                    note=note,
                )
            )
        session.commit()
    return case


# --- Allocation ------------------------------------------------------------------------


def live_allocation(session: Session, case: Case) -> Allocation | None:
    return session.execute(
        select(Allocation)
        .where(
            col(Allocation.case_id) == case.id,
            col(Allocation.status).in_([AllocationStatus.offered, AllocationStatus.accepted]),
        )
        .order_by(col(Allocation.id).desc())
        .limit(1)
    ).scalar_one_or_none()


def allocate(
    session: Session,
    reference: str,
    provider_name: str,
    *,
    now: dt.datetime,
    actor: Actor,
    settings: Settings,
    note: str = "",
    override_reason: str = "",
) -> Allocation:
    """Offer the case to a provider; it has a service-set time to accept or decline.

    A disagreement-resolution case that has been advised moves to ``allocated`` in
    the same transaction; a mediation case needs the allocation before the family's
    choice of mediation can be recorded.
    """
    now = _require_aware(now)
    with _case_transaction(session, reference):
        with session.no_autoflush:
            case = get_case(session, reference)
            if actor.role == "provider":
                raise NotFound(f"no case with reference {reference!r}")
            if case.state in FINAL_STATES:
                raise TransitionRefused(
                    f"Cannot allocate: case is {case.state}; allowed now: nothing (case is closed)",
                    [],
                )
            if case.kind == CaseKind.mediation and case.state in (
                CaseState.declined,
                CaseState.certificate_issued,
                CaseState.appeal_ready,
            ):
                raise TransitionRefused(
                    f"Cannot allocate: case is {case.state},"
                    " past the point where a mediator is needed",
                    [e for e, _ in allowed_events(case)],
                )
            provider = find_provider(session, provider_name)
            pending = open_deadlines(session, case)
            previous = live_allocation(session, case)
            if previous is not None:
                if previous.provider_id == provider.id:
                    raise ValidationFailed(
                        f"{case.reference} is already allocated to {provider.name}",
                        field="provider",
                    )
                previous.status = AllocationStatus.ended
                previous.responded_at = previous.responded_at or now
                _cancel(pending, now, "re-allocated", [DeadlineKind.allocation_acceptance])
            allocation = Allocation(
                case_id=case.id,  # type: ignore[arg-type]
                provider_id=provider.id,  # type: ignore[arg-type]
                status=AllocationStatus.offered,
                allocated_at=now,
                allocated_by=actor.id,
                note=note,
                override_reason=override_reason,
            )
            session.add(allocation)
            from_state = case.state
            case.provider_id = provider.id
            case.updated_at = now
            today = dl.local_date(now)
            opened = [
                _add_deadline(
                    session,
                    case,
                    dl.service_target(
                        DeadlineKind.allocation_acceptance,
                        today,
                        settings.allocation_acceptance_working_days,
                        f"allocated to {provider.name}",
                    ),
                    now,
                )
            ]
            event_name = "allocate_provider"
            if case.kind == CaseKind.disagreement and case.state == CaseState.advised:
                flow_for(case).send("allocate")
                opened += _apply(case, "allocate", {}, pending, session, now, today, settings)
            data = (
                {"provider": provider.code, "override_reason": override_reason}
                if override_reason
                else {"provider": provider.code}
            )
            session.add(
                CaseEvent(
                    case_id=case.id,  # type: ignore[arg-type]
                    at=now,
                    actor=actor.id,
                    event=event_name,
                    from_state=from_state,
                    to_state=case.state,
                    data=data,
                    channel=actor.channel,
                    note=note,
                )
            )
            _run_hooks(
                session,
                TransitionContext(
                    case,
                    family_of(session, case),
                    event_name,
                    from_state,
                    case.state,
                    data,
                    now,
                    actor,
                    settings,
                    opened,
                    provider,
                ),
            )
        session.commit()
    return allocation


def respond_to_allocation(
    session: Session,
    reference: str,
    *,
    accept: bool,
    now: dt.datetime,
    actor: Actor,
    settings: Settings,
    note: str = "",
) -> Allocation:
    """The provider accepts or declines; a decline returns the case to the adviser."""
    now = _require_aware(now)
    with _case_transaction(session, reference):
        with session.no_autoflush:
            case = get_case(session, reference)
            _check_actor_may_act(case, actor)
            if case.state in FINAL_STATES:
                raise TransitionRefused(
                    f"Cannot {'accept' if accept else 'decline'}: {case.reference} is {case.state}",
                    [],
                )
            allocation = live_allocation(session, case)
            if allocation is None or allocation.status != AllocationStatus.offered:
                raise TransitionRefused(
                    f"Cannot {'accept' if accept else 'decline'}: {case.reference} has no"
                    " allocation waiting for an answer",
                    [],
                )
            if not accept and not note.strip():
                raise ValidationFailed("a reason is needed to decline an allocation", field="note")
            pending = open_deadlines(session, case)
            from_state = case.state
            allocation.responded_at = now
            allocation.responded_by = actor.id
            if accept:
                allocation.status = AllocationStatus.accepted
                _meet(
                    pending,
                    [DeadlineKind.allocation_acceptance],
                    now,
                    done_on=dl.local_date(now),
                    reason="allocation accepted",
                )
            else:
                allocation.status = AllocationStatus.declined
                _cancel(pending, now, "allocation declined", [DeadlineKind.allocation_acceptance])
                if case.kind == CaseKind.disagreement and case.state == CaseState.allocated:
                    # Back to the adviser for re-allocation, with the allocation target again.
                    bound_flow(case).send("return_to_adviser")
                    _apply(
                        case,
                        "return_to_adviser",
                        {},
                        pending,
                        session,
                        now,
                        dl.local_date(now),
                        settings,
                    )
                elif case.state not in (CaseState.requested, CaseState.advised):
                    raise TransitionRefused(
                        f"Cannot decline: {case.reference} is already {case.state} with this"
                        " provider; ask the adviser to re-allocate",
                        [],
                    )
                case.provider_id = None
            case.updated_at = now
            event_name = "accept_allocation" if accept else "decline_allocation"
            session.add(
                CaseEvent(
                    case_id=case.id,  # type: ignore[arg-type]
                    at=now,
                    actor=actor.id,
                    event=event_name,
                    from_state=from_state,
                    to_state=case.state,
                    data={"provider_id": allocation.provider_id},
                    channel=actor.channel,
                    note=note,
                )
            )
            _run_hooks(
                session,
                TransitionContext(
                    case,
                    family_of(session, case),
                    event_name,
                    case.state,
                    case.state,
                    {"note": note},
                    now,
                    actor,
                    settings,
                    [],
                    session.get(Provider, allocation.provider_id),
                ),
            )
        session.commit()
    return allocation


# --- Queries ---------------------------------------------------------------------------


def list_cases(session: Session, state: str | None = None, limit: int = 500) -> list[Case]:
    query = select(Case).order_by(col(Case.id).desc()).limit(limit)
    if state:
        if state not in CaseState.__members__:
            raise ValidationFailed(
                f"unknown state {state!r}; states: {', '.join(CaseState)}", field="state"
            )
        query = query.where(col(Case.state) == state)
    return list(session.execute(query).scalars())


def list_deadlines(
    session: Session, due_before: dt.date | None = None, status: str = DeadlineStatus.open
) -> list[tuple[Deadline, str]]:
    query = (
        select(Deadline, col(Case.reference))
        .join(Case, col(Case.id) == Deadline.case_id)
        .where(col(Deadline.status) == status)
        .order_by(col(Deadline.due_at))
    )
    if due_before is not None:
        query = query.where(col(Deadline.due_date) < due_before)
    return [(d, ref) for d, ref in session.execute(query).all()]


def case_deadlines(session: Session, case: Case) -> list[Deadline]:
    return list(
        session.execute(
            select(Deadline).where(col(Deadline.case_id) == case.id).order_by(col(Deadline.id))
        ).scalars()
    )


def case_events(session: Session, case: Case) -> list[CaseEvent]:
    return list(
        session.execute(
            select(CaseEvent).where(col(CaseEvent.case_id) == case.id).order_by(col(CaseEvent.id))
        ).scalars()
    )


def count_cases(session: Session) -> int:
    return int(session.execute(select(func.count()).select_from(Case)).scalar_one())
