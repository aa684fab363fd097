"""Move a case by an event: the one use case behind every "record this step" in every door."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm.attributes import flag_modified
from sqlmodel import Session

from casework import deadlines as dl
from casework.cases.access import check_actor_may_see
from casework.cases.context import Actor
from casework.cases.effects import (
    EventSpec,
    check_may_record,
    check_provider_accepted,
    event_label,
    spec_for,
)
from casework.cases.errors import Conflict, TransitionRefused
from casework.cases.fields import parse_event_data
from casework.cases.unit import (
    Clocks,
    Step,
    case_transaction,
    load_case_with_clocks,
    record_change,
    require_aware,
    write_step,
)
from casework.cases.words import state_words
from casework.config import Settings
from casework.models import Case
from casework.states import EVENTS, CaseKind, declared_from, enabled_events, target_of

# Why a step the flow knows is not possible yet, in words, with what to do first.
_GUARD_WORDS: dict[str, str] = {
    "choose_mediation": "allocate a provider first",
    "schedule_meeting": "allocate a provider first",
    "record_meeting": "allocate a provider first",
    "allocate": "allocate a provider first",
    "issue_certificate": (
        "record the meeting, or the LA's report that it cannot arrange one within 30 days, first"
    ),
    "report_not_arranged": "the LA's report that it cannot arrange the meeting is already recorded",
    "record_icb_told": "the ICB is not involved, or the day it was told is already recorded",
}


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


def describe_refusal(case: Case, event: str, actor: Actor | None = None) -> TransitionRefused:
    """'Cannot issue certificate: the case is Mediating; record the meeting ... first.'

    The steps offered instead are the ones this person may record.
    """
    allowed = [name for name, _ in allowed_events(case, actor)]
    known = event in EVENTS[CaseKind(case.kind)]
    label = event_label(event, case.kind)
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
        tail = "Nothing more can be recorded: the case is closed."
    return TransitionRefused(f"Cannot record \u201c{label}\u201d: {reason}. {tail}", allowed)


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
    now = require_aware(now)
    with case_transaction(session, reference):
        case, family, provider, live = load_case_with_clocks(session, reference)
        check_actor_may_see(case, actor)
        if expected_version is not None and case.version != expected_version:
            raise Conflict(
                f"{case.reference} was changed by someone else (it is now"
                f" {state_words(case.state)}); reload it and try again"
            )
        spec = spec_for(case.kind, event)
        if spec is None:
            raise describe_refusal(case, event, actor)
        check_may_record(spec, actor, case)
        if actor.is_provider:
            check_provider_accepted(session, case)
        today = dl.local_date(now)
        from_state = case.state
        # Everything below only changes objects in memory; one flush at commit writes
        # the case once (one version bump) and batches the rest. If the data turn out
        # to be invalid after the transition, the rollback undoes it.
        with session.no_autoflush:
            # The flow's table (read from its machine once per process) and the
            # machine's own guards: no machine is built per step.
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
                clocks=Clocks(session, case, now, live),
            )
            step.from_state = from_state
            clocks = step.clocks
            if spec.effect is not None:
                spec.effect(step)
            if note:
                parsed.setdefault("note", note)
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
            )
            # The step's rows as Core statements built once (the usual few rows);
            # anything else a handler changed goes through the unit of work.
            write_step(session, case, clocks)
        session.commit()
    return case
