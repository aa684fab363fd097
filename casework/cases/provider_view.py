"""What provider staff see of a case: an explicit list, in one place, for the portal and the API.

Which cases, first (:func:`provider_may_open`, the one rule every door applies): a
provider's staff open a case only while the provider has a live allocation of it
(offered or accepted), or when the provider ran its mediation or meeting (a meeting
recorded as held while the case was allocated to it), and then only until
``provider_retention_days`` after the case ended, so a mediator keeps the record of a
meeting it held (its certificate, the agreement). An allocation that ended before any
meeting was held (the family declined mediation or withdrew, the case went to another
provider, the provider declined the offer) takes the case out of the provider's lists
and lookups at once: it then answers exactly like a case that does not exist.

Confidential by listing, not by hiding: a provider's view is built from the fields
named here and nothing else, so a field added to a case later stays with the IAS
until someone decides a provider needs it. Staff of the provider the case is
allocated to see: the case facts a mediator needs, the family's contact once they
have accepted the case, their own allocation (with its note, never the reason the
adviser gave for choosing them), the clocks they must meet, the steps of the
mediation and what was agreed, the notes and calls the adviser shared with them,
and the notices sent to them. Never: adviser-only
notes, another provider's allocation or decline reason or notices, IAS staff
addresses, the view log, or the adviser's warnings.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import ColumnElement, Select, exists, or_, select
from sqlalchemy import case as sql_case
from sqlmodel import Session, col

from casework.cases.detail import CaseDetail
from casework.config import Settings
from casework.models import (
    Allocation,
    AllocationStatus,
    Case,
    CaseEvent,
    CaseNote,
    Notice,
    Person,
    Provider,
)
from casework.states import FINAL_STATES

# The case's own fields a provider sees.
CASE_FIELDS: tuple[str, ...] = (
    "id",
    "reference",
    "kind",
    "state",
    "version",
    "intake_channel",
    "opened_at",
    "updated_at",
    "summary",
    "child_name",
    "decision_date",
    "decision_type",
    "health_care",
    "health_only",
    "placement_only",
    "provider_id",
    "la_told_on",
    "icb_told_on",
    "meeting_on",
    "meeting_time",
    "meeting_held_on",
    "meeting_outcome",
    "agreement",
    "not_arranged_reported_on",
    "certificate_on",
    "certificate_type",
    "second_certificate_on",
)
# The clocks a provider must meet (or that tell it when the meeting must be held).
CLOCKS: frozenset[str] = frozenset(
    {
        "allocation_acceptance",
        "scheduled_meeting",
        "mediation_meeting",
        "certificate_after_meeting",
        "dr_meeting",
    }
)
# The steps of a case a provider sees in its history, and the data of each.
EVENTS: frozenset[str] = frozenset(
    {
        "choose_mediation",
        "record_icb_told",
        "schedule_meeting",
        "record_meeting",
        "report_not_arranged",
        "issue_certificate",
        "add_agreement_item",
        "agreement_item_done",
        "allocate",
        "allocate_provider",
        "accept_allocation",
        "decline_allocation",
        "withdraw",
        "close",
    }
)
EVENT_DATA: frozenset[str] = frozenset(
    {
        "la_told_on",
        "icb_told_on",
        "meeting_on",
        "meeting_time",
        "meeting_held_on",
        "outcome",
        "agreement",
        "told_on",
        "certificate_on",
        "certificate_type",
        "second_certificate",
        "item",
        "description",
        "body",
        "due",
        "done_on",
        # What the step asked its recorder to check (a meeting held before its
        # scheduled day): the provider recorded it, so it reads the warning too.
        "warning",
    }
)
# The documents a provider reads (of its own cases): its mediator's certificate and
# the meeting invitation. The adviser's certificates and the family's letters stay
# with the IAS.
DOCUMENT_KINDS: frozenset[str] = frozenset({"certificate_mediation_held", "meeting_invitation"})
# A note or call the adviser marked shared with the provider, and of it only these.
NOTE_FIELDS: tuple[str, ...] = (
    "id",
    "case_id",
    "kind",
    "text",
    "shared",
    "call_on",
    "direction",
    "who",
    "recorded_at",
)
# Who recorded a step, as a provider reads it: never an IAS member's address.
IAS = "the IAS service"


def notices_condition(
    provider_id: int, *, now: dt.datetime, settings: Settings
) -> ColumnElement[bool]:
    """The notices a provider's staff may list: those sent to it, on cases it may still
    open (:func:`provider_may_open`: a case's notices leave with the case)."""
    address = select(col(Provider.email)).where(col(Provider.id) == provider_id)
    return (
        col(Notice.case_id).in_(provider_case_ids(provider_id, now=now, settings=settings))
        & (col(Notice.recipient_role) == "provider")
        & (col(Notice.to_address) == address.scalar_subquery())
    )


def still_listed(now: dt.datetime, settings: Settings) -> ColumnElement[bool]:
    """The cases a provider's lists may still hold: open ones, and ended ones for a while.

    One part of :func:`provider_may_open`, which also asks that the provider has the
    case now or ran its meeting.

    A case that ended (closed or withdrawn) more than ``provider_retention_days`` ago
    drops out of the provider's lists in the portal and the API. The moment it ended
    is its audit row moving into a final state (a later note on the closed case does
    not count; a reopened case is open again).
    """
    final = [s.value for s in FINAL_STATES]
    cutoff = now - dt.timedelta(days=settings.provider_retention_days)
    ended_recently = exists().where(
        col(CaseEvent.case_id) == Case.id,
        col(CaseEvent.to_state).in_(final),
        or_(col(CaseEvent.from_state).is_(None), col(CaseEvent.from_state).not_in(final)),
        col(CaseEvent.at) >= cutoff,
    )
    return col(Case.state).not_in(final) | ended_recently


def provider_may_open(
    provider_id: int, *, now: dt.datetime, settings: Settings
) -> ColumnElement[bool]:
    """The one rule for provider staff opening a case by its reference (portal and API).

    A condition on ``Case`` rather than a check after loading, so the lookup stays the
    one query it was. The case must be the provider's (``Case.provider_id``: the last
    provider allocated, kept when the allocation ends, cleared when the provider
    declines it or a disagreement case goes back to the adviser), its personal data not
    anonymised, still in the provider's lists (:func:`still_listed`: an ended case goes
    after the retention), and either

    - allocated to the provider now (an offer waiting or accepted), or
    - past a meeting held while it was: the mediator keeps the record of a meeting it
      ran (``meeting_held_on`` is only recorded while the case has a provider, and only a
      re-allocation, which makes the new provider the case's, changes that provider).

    An allocation that ended before any meeting (the family declined mediation or
    withdrew) leaves nothing for the provider to run or keep, so the case goes at once.
    Any other case answers exactly like a case that does not exist, so a reference kept
    from the list (or an old email) does not open what the list no longer shows.
    """
    allocated_now = exists().where(
        col(Allocation.case_id) == Case.id,
        col(Allocation.provider_id) == provider_id,
        col(Allocation.status).in_([AllocationStatus.offered, AllocationStatus.accepted]),
    )
    return (
        (col(Case.provider_id) == provider_id)
        & col(Case.anonymised_at).is_(None)
        & (col(Case.meeting_held_on).is_not(None) | allocated_now)
        & still_listed(now, settings)
    )


def provider_case_ids(provider_id: int, *, now: dt.datetime, settings: Settings) -> Select[Any]:
    """The ids of the cases :func:`provider_may_open`: what a provider's rows of a child
    table (its clocks, its notices) are limited to, so they leave with their case."""
    return select(col(Case.id)).where(provider_may_open(provider_id, now=now, settings=settings))


@dataclass
class ListedCase:
    """One row of a provider's own case list: the case and the family contact's name."""

    case: Case
    family_name: str


def provider_cases(
    session: Session, provider_id: int, *, now: dt.datetime, settings: Settings, limit: int
) -> list[ListedCase]:
    """The provider's own cases, open first then newest first, as its portal lists them.

    Exactly the cases :func:`provider_may_open`: allocated to this provider now, or whose
    meeting it ran until the retention after the case ended.
    """
    open_first = sql_case((col(Case.state).in_([s.value for s in FINAL_STATES]), 1), else_=0)
    rows = session.execute(
        select(Case, col(Person.name))
        .outerjoin(Person, (col(Person.case_id) == Case.id) & (col(Person.role) == "family"))
        .where(provider_may_open(provider_id, now=now, settings=settings))
        .order_by(open_first, col(Case.id).desc())
        .limit(limit)
    ).all()
    return [ListedCase(case, name or "") for case, name in rows]


def _own_event(event: CaseEvent, provider: Provider) -> bool:
    """An allocation step concerns this provider only if it was this provider's."""
    data = event.data or {}
    if event.event == "allocate_provider":
        return data.get("provider") == provider.code
    if event.event in ("accept_allocation", "decline_allocation"):
        return data.get("provider_id") == provider.id
    return True


def _event(event: CaseEvent, provider: Provider) -> CaseEvent:
    data: dict[str, Any] = {k: v for k, v in (event.data or {}).items() if k in EVENT_DATA}
    return CaseEvent(
        id=event.id,
        case_id=event.case_id,
        at=event.at,
        actor=IAS if event.channel != "portal" else provider.name,
        event=event.event,
        from_state=event.from_state,
        to_state=event.to_state,
        data=data,
        channel=event.channel,
        note="",
    )


def _note(note: CaseNote) -> CaseNote:
    return CaseNote(**{name: getattr(note, name) for name in NOTE_FIELDS}, recorded_by=IAS)


def _allocation(allocation: Allocation | None, provider: Provider) -> Allocation | None:
    if allocation is None or allocation.provider_id != provider.id:
        return None
    return Allocation(
        id=allocation.id,
        case_id=allocation.case_id,
        provider_id=allocation.provider_id,
        status=allocation.status,
        allocated_at=allocation.allocated_at,
        allocated_by=IAS,
        responded_at=allocation.responded_at,
        responded_by=allocation.responded_by,
        note=allocation.note,
        override_reason="",
    )


def for_provider(detail: CaseDetail, provider: Provider) -> CaseDetail:
    """The case as the staff of ``provider`` may see it (the case must be allocated to it).

    Every object returned is a fresh copy that belongs to no database session, so
    leaving a field out can never be written back.
    """
    case = Case(**{name: getattr(detail.case, name) for name in CASE_FIELDS})
    allocation = _allocation(detail.allocation, provider)
    active = (
        detail.case.state not in FINAL_STATES
        and allocation is not None
        and allocation.status == AllocationStatus.accepted
    )
    own_notices = [
        n
        for n in detail.notices
        if n.recipient_role == "provider" and n.to_address == provider.email
    ]
    return replace(
        detail,
        case=case,
        family=detail.family if active else None,
        provider=provider,
        allocation=allocation,
        allocation_provider=provider if allocation is not None else None,
        deadlines=[
            d
            for d in detail.deadlines
            if d.kind in CLOCKS
            # Another provider's answer to an earlier allocation is not this one's clock.
            and (
                d.kind != "allocation_acceptance"
                or (allocation is not None and d.opened_at >= allocation.allocated_at)
            )
        ],
        events=[
            _event(e, provider)
            for e in detail.events
            if e.event in EVENTS and _own_event(e, provider)
        ],
        notices=own_notices,
        deliveries={n.id: detail.deliveries.get(n.id, []) for n in own_notices if n.id},
        # Only notes the adviser marked shared; an adviser-only note never leaves the IAS.
        notes=[_note(n) for n in detail.notes if n.shared],
        documents=[d for d in detail.documents if d.kind in DOCUMENT_KINDS],
        warnings=[],
        view_count=0,
        recent_views=[],
    )
