"""Move a case by an event: the one use case behind every "record this step" in every door."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import flag_modified
from sqlmodel import Session

from casework import deadlines as dl
from casework.cases.access import check_actor_may_see, ended_refusal, refuse_if_ended
from casework.cases.certificates import Prepared, RenderFirst, number_prefix
from casework.cases.context import Actor
from casework.cases.effects import (
    EventSpec,
    check_may_record,
    check_provider_accepted,
    event_label,
    spec_for,
)
from casework.cases.errors import Conflict, TransitionRefused, WriteRefusedAfterRead
from casework.cases.fields import parse_event_data
from casework.cases.unit import (
    Clocks,
    Step,
    case_transaction,
    live_deadlines,
    load_case,
    load_case_detached,
    load_case_with_clocks,
    may_load_detached,
    record_change,
    require_aware,
    write_detached_step,
    write_step,
)
from casework.cases.words import DEADLINE_WORDS, actor_words, state_words
from casework.config import Settings
from casework.models import Allocation, AllocationStatus, Case
from casework.states import (
    EVENTS,
    FINAL_STATES,
    CaseKind,
    declared_from,
    enabled_events,
    target_of,
)

# Why a step the flow knows is not possible yet, in words, with what to do first.
_GUARD_WORDS: dict[str, str] = {
    "choose_mediation": "allocate a provider first",
    "schedule_meeting": "allocate a provider first",
    "record_meeting": "allocate a provider first",
    "cancel_meeting": "no meeting is arranged that has not yet been held",
    "allocate": "allocate a provider first",
    "issue_certificate": (
        "record the meeting, or the LA's report that it cannot arrange one within 30 days, first"
    ),
    "report_not_arranged": "the LA's report that it cannot arrange the meeting is already recorded",
    "record_icb_told": "the ICB is not involved, or the day it was told is already recorded",
}


# Steps that issue a certificate: their load also reads the actor's name and the
# year's last certificate number. A step runs at most this many times when its
# certificate must be rendered first or loses its number to another at the same moment.
CERTIFICATE_EVENTS = frozenset({"issue_certificate"})
_ATTEMPTS = 4


def facts_of(case: Case) -> dict[str, dt.date | None]:
    """The dates already on the case that a new date may not precede."""
    return {
        "decision_date": case.decision_date,
        "advised_on": case.advised_on,
        "chose_on": case.chose_on,
        "la_told_on": case.la_told_on,
        "icb_told_on": case.icb_told_on,
        "declined_on": case.declined_on,
        "meeting_held_on": case.meeting_held_on,
        "not_arranged_reported_on": case.not_arranged_reported_on,
        "certificate_on": case.certificate_on,
    }


def allowed_events(case: Case, actor: Actor | None = None) -> list[tuple[str, EventSpec]]:
    """The steps possible now (guards evaluated) that this person may record."""
    out: list[tuple[str, EventSpec]] = []
    for event in enabled_events(case):
        spec = spec_for(case.kind, event)
        if spec is None:
            continue
        if actor is not None:
            if actor.role not in spec.roles:
                continue
            if spec.permission is not None and spec.permission(actor, case):
                continue
        out.append((event, spec))
    return out


def unavailable_events(case: Case, actor: Actor | None = None) -> list[tuple[str, str]]:
    """Steps of this state not possible YET, as (words, what to do first), for this person.

    A case page lists them beside the steps that are possible, so "Family chose
    mediation" missing from the page is never a mystery: it says "allocate a provider
    first". Only steps whose transition exists from the case's state and whose guard
    waits on another step are listed; a step already done or not needed here (the ICB
    on a case without health care) is not, nor one the person may never record.
    """
    # Read from the precomputed transition table, not a machine built per page view.
    enabled = set(enabled_events(case))
    out: list[tuple[str, str]] = []
    for event in EVENTS[CaseKind(case.kind)]:
        if event in enabled or event not in _GUARD_WORDS:
            continue
        if not declared_from(case.kind, case.state, event):
            continue
        spec = spec_for(case.kind, event)
        if spec is None or (actor is not None and actor.role not in spec.roles):
            continue
        why = _GUARD_WORDS[event]
        if not why.endswith("first"):
            continue  # not a step waiting on another, but one already done or not needed
        if why.startswith("allocate") and actor is not None and actor.is_provider:
            continue
        out.append((spec.label, why[0].upper() + why[1:] + "."))
    return out


def nothing_possible_words(case: Case) -> str:
    """Why no step is offered: the case has ended (closed or withdrawn, in its own
    words), or it waits on a step this person may not record."""
    if case.state in FINAL_STATES:
        return f"Nothing more can be recorded: the case is {state_words(case.state)}."
    return "Nothing you may record is possible now."


def describe_refusal(case: Case, event: str, actor: Actor | None = None) -> TransitionRefused:
    """'Cannot issue certificate: the case is Mediating; record the meeting ... first.'

    The steps offered instead are the ones this person may record.
    """
    label = event_label(event, case.kind)
    ended = ended_refusal(case, f"record \u201c{label}\u201d", actor)
    if ended is not None:
        return ended
    allowed = [name for name, _ in allowed_events(case, actor)]
    known = event in EVENTS[CaseKind(case.kind)]
    if not known:
        kind = "mediation" if case.kind == CaseKind.mediation else "disagreement-resolution"
        reason = f"that is not a step of a {kind} case"
    elif declared_from(case.kind, case.state, event):
        reason = f"the case is {state_words(case.state)}; {_GUARD_WORDS.get(event, 'not yet')}"
    else:
        reason = f"the case is {state_words(case.state)}"
    if allowed:
        possible = "; ".join(event_label(e, case.kind) for e in allowed)
        tail = f"Possible now: {possible}."
    else:
        tail = nothing_possible_words(case)
    return TransitionRefused(f"Cannot record \u201c{label}\u201d: {reason}. {tail}", allowed)


@dataclass(frozen=True)
class Recorded:
    """A step recorded, with what the person should check (warnings are not refusals)."""

    case: Case
    warnings: list[str]


@dataclass(frozen=True)
class Preview:
    """What a step would do, worked out by the use case itself and not committed."""

    case_reference: str
    event: str
    label: str
    state_before: str
    state_after: str
    clocks_stopped: list[str]
    clocks_done: list[str]
    allocation_ends: bool
    warnings: list[str]


def _apply(
    session: Session,
    reference: str,
    event: str,
    *,
    now: dt.datetime,
    actor: Actor,
    settings: Settings,
    data: Mapping[str, Any] | None,
    note: str,
    expected_version: int | None,
    prepared: Any = None,
    preview: bool = False,
    render_in_transaction: bool = False,
    detached: bool = False,
    versions_read: list[int] | None = None,
) -> Step:
    """Apply ``event`` in memory (nothing flushed): the caller commits or rolls back.

    ``prepared``: a certificate PDF rendered before this transaction (see
    :func:`casework.cases.certificates.certificate_for_step`); ``preview``: store no
    document; ``detached``: load on Core, outside the session (:func:`load_case_detached`;
    only when the session has nothing pending), written by :func:`write_detached_step`.
    """
    sqlite = session.get_bind().dialect.name == "sqlite"
    loaded = (load_case_detached if detached else load_case_with_clocks)(
        session,
        reference,
        # SQLite: the chain's end comes with the case (see load_case_with_clocks).
        chain_end=sqlite and not preview,
        certificate_for=(actor_words(actor.id), number_prefix(now))
        if event in CERTIFICATE_EVENTS
        else None,
    )
    case, family, provider, live = loaded.case, loaded.family, loaded.provider, loaded.live
    if versions_read is not None:
        versions_read.append(case.version)  # the version this attempt read
    check_actor_may_see(case, actor)
    if expected_version is not None and case.version != expected_version:
        raise Conflict(
            f"{case.reference} was changed by someone else (it is now"
            f" {state_words(case.state)}); reload it and try again"
        )
    # An ended case first: nothing else the step needs would help (see refuse_if_ended).
    refuse_if_ended(case, f"record \u201c{event_label(event, case.kind)}\u201d", actor)
    spec = spec_for(case.kind, event)
    if spec is None:
        raise describe_refusal(case, event, actor)
    check_may_record(spec, actor, case)
    if actor.is_provider:
        check_provider_accepted(session, case, loaded.provider_accepted)
    today = dl.local_date(now)
    from_state = case.state
    # The flow's table (read from its machine once per process) and the machine's own
    # guards: no machine is built per step.
    target = target_of(case, event)
    if target is None:
        raise describe_refusal(case, event, actor)
    case.state = target
    parsed = parse_event_data(
        spec.fields, spec.label, data or {}, today=today, facts=facts_of(case)
    )
    step = Step.begin(
        session,
        case,
        now=now,
        settings=settings,
        actor=actor,
        family=family,
        provider=provider,
        data=parsed,
        clocks=Clocks(session, case, now, live, detached=detached),
    )
    step.from_state = from_state
    step.actor_name = loaded.actor_name
    step.last_certificate = loaded.last_certificate
    step.prepared = prepared
    step.render_in_transaction = render_in_transaction or not sqlite
    step.preview = preview
    step.chain_end = loaded.chain_end
    step.provider_accepted = loaded.provider_accepted
    clocks = step.clocks
    if spec.effect is not None:
        spec.effect(step)
    if note:
        parsed.setdefault("note", note)
    if step.warnings:
        # Kept with the step, so the timeline says what was checked and when.
        parsed["warning"] = " ".join(step.warnings)
    case.updated_at = now
    # Every event bumps the version, even one that changes no column (a fixed
    # ``now``): the optimistic check must see every writer.
    flag_modified(case, "updated_at")
    record_change(
        session,
        case,
        actor=actor,
        event=event,
        at=now,
        from_state=from_state,
        settings=settings,
        data=parsed,
        note=note or str(parsed.get("note", "")),
        family=family,
        provider=provider,
        clocks=clocks,
        agreement_items=step.items,
        attachments=step.attachments,
        provider_accepted=step.provider_accepted,
    )
    return step


def record_step(
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
) -> Recorded:
    """Move a case by ``event``; the whole change commits, or nothing does.

    Returns the case and the step's warnings: things the person should check that the
    law does not forbid (a meeting recorded days before its scheduled date), which a
    door shows without refusing.
    """
    now = require_aware(now)
    prepared: Prepared | None = None
    # A caller's own changes still pending in the session are never dropped to render
    # a certificate first: then it is rendered in the transaction (before its writes).
    keep_callers_changes = bool(session.new or session.dirty or session.deleted)
    # The step's rows are loaded outside the session unless the session may hold them.
    detached = not keep_callers_changes and may_load_detached(session)
    versions_read: list[int] = []
    waited_for_writer = False
    for _attempt in range(_ATTEMPTS):
        try:
            with case_transaction(session, reference):
                # Everything below only changes objects in memory; the step's rows are
                # then written by Core statements built once (the usual few rows), and
                # anything else a handler changed by the unit of work at commit. If the
                # data turn out to be invalid after the transition, the rollback undoes it.
                with session.no_autoflush:
                    step = _apply(
                        session,
                        reference,
                        event,
                        now=now,
                        actor=actor,
                        settings=settings,
                        data=data,
                        note=note,
                        expected_version=expected_version,
                        prepared=prepared,
                        render_in_transaction=keep_callers_changes,
                        detached=detached,
                        versions_read=versions_read,
                    )
                    write = write_detached_step if detached else write_step
                    write(session, step.case, step.clocks, step.chain_end)
                session.commit()
            return Recorded(step.case, list(step.warnings))
        except WriteRefusedAfterRead:
            # SQLite: another writer (the sweep, a sender, someone on another case)
            # committed between this step's read and its first write, and SQLite
            # refuses a write from a stale read. Run the step again as a writer from the
            # start (BEGIN IMMEDIATE waits its turn), held to the version it read, as
            # PostgreSQL's UPDATE is after waiting for the row: a real change to this
            # case meanwhile is still a Conflict; a write elsewhere no longer is.
            if keep_callers_changes or waited_for_writer or not versions_read:
                raise
            waited_for_writer = True
            if expected_version is None:
                expected_version = versions_read[-1]
            session.connection(execution_options={"claim": True})
        except RenderFirst as render:
            # Nothing was written and the transaction is over: lay the PDF out now,
            # with no lock or snapshot held, and run the step again.
            prepared = render.render()
        except IntegrityError as exc:
            # Another certificate took the same number at the same moment (PostgreSQL:
            # the unique number waited for that one's commit). Run again: the next number.
            if "uq_documents_certificate" not in str(exc):
                raise
    raise Conflict(
        f"{reference.strip().upper()} could not be changed: other changes kept"
        " arriving while its certificate was being made; reload it and try again"
    )


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
    return record_step(
        session,
        reference,
        event,
        now=now,
        actor=actor,
        settings=settings,
        data=data,
        note=note,
        expected_version=expected_version,
    ).case


def preview_event(
    session: Session,
    reference: str,
    event: str,
    *,
    now: dt.datetime,
    actor: Actor,
    settings: Settings,
    data: Mapping[str, Any] | None = None,
    expected_version: int | None = None,
) -> Preview:
    """What recording ``event`` would do, without doing it: for a "check before you
    close" page.

    It runs the very use case (every check, every clock rule) and rolls it back, so
    what the page promises is what recording does; a refusal comes back exactly as
    recording would give it.
    """
    now = require_aware(now)
    with case_transaction(session, reference):
        with session.no_autoflush:
            live_before = {}
            case, _family, _provider = load_case(session, reference)
            state_before = case.state
            for d in live_deadlines(session, case):
                live_before[d.id] = (d.status, d.closed_reason)
            step = _apply(
                session,
                reference,
                event,
                now=now,
                actor=actor,
                settings=settings,
                data=data,
                note="",
                expected_version=expected_version,
                preview=True,
            )
            stopped: list[str] = []
            done: list[str] = []
            for d in step.clocks.live:
                if d.id not in live_before or (d.status, d.closed_reason) == live_before[d.id]:
                    continue
                words = f"{DEADLINE_WORDS.get(d.kind, d.kind)}, due {dl.fmt(d.due_date)}"
                (done if d.done_on is not None else stopped).append(words)
            allocation_ends = any(
                isinstance(o, Allocation) and o.status == AllocationStatus.ended
                for o in session.dirty
            )
            preview = Preview(
                case_reference=step.case.reference,
                event=event,
                label=event_label(event, step.case.kind),
                state_before=state_before,
                state_after=step.case.state,
                clocks_stopped=stopped,
                clocks_done=done,
                allocation_ends=allocation_ends,
                warnings=list(step.warnings),
            )
        session.rollback()
    return preview
