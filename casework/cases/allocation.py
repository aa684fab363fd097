"""Which provider should take a case: a suggestion from configurable rules, and overrides.

The five providers are commissioned to share the work, so the default is rotation
weighted by how many open cases each already carries (optionally scaled by a
per-provider capacity in ``[allocation]`` config). A provider is left out when it
has declared a conflict of interest that matches the case, when the adviser excludes
it for this case, when it already declined this case, or when its capacity is 0. A
family's preferred provider is honoured unless it is left out.

The adviser decides: an allocation that departs from the suggestion needs a reason,
which is kept on the allocation and in the case's audit trail, so a commissioner can
see why the rota was not followed. :func:`check_override` is that rule and
:func:`allocate` the one use case every door calls: it works the suggestion out
afresh, applies the rule, and records the allocation in one transaction.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlmodel import Session, col

from casework import deadlines as dl
from casework.cases.access import check_actor_may_see, refuse_if_ended
from casework.cases.context import Actor
from casework.cases.effects import EVENTS, live_allocation
from casework.cases.errors import NotFound, NotPermitted, TransitionRefused, ValidationFailed
from casework.cases.unit import (
    Clocks,
    Step,
    case_transaction,
    check_seen_version,
    load_case,
    record_change,
    require_aware,
    runs_again_as_writer,
)
from casework.cases.words import state_words
from casework.config import AllocationRules, Settings
from casework.deadlines import DeadlineKind
from casework.models import Allocation, AllocationStatus, Case, Provider
from casework.states import FINAL_STATES, CaseKind, CaseState, flow_for

__all__ = [
    "Candidate",
    "Suggestion",
    "allocate",
    "can_allocate",
    "check_override",
    "matching_conflict",
    "open_loads",
    "respond_to_allocation",
    "suggest",
]


@dataclass(frozen=True, slots=True)
class Candidate:
    """One provider as the rules see it: its load, capacity and why it is left out (if it is)."""

    provider_id: int
    code: str
    name: str
    open_cases: int
    capacity: float
    last_allocation_id: int | None
    excluded: str | None = None

    @property
    def load(self) -> float:
        """Open cases per unit of capacity; what the rotation compares."""
        return self.open_cases / self.capacity if self.capacity > 0 else math.inf


@dataclass(frozen=True, slots=True)
class Suggestion:
    """The suggested provider (None when every provider is left out) and the reasons why."""

    provider: Candidate | None
    reasons: tuple[str, ...]
    candidates: tuple[Candidate, ...]
    preferred: str | None = None

    @property
    def code(self) -> str | None:
        return self.provider.code if self.provider else None

    def find(self, name_or_code: str) -> Candidate | None:
        wanted = name_or_code.strip().casefold()
        for c in self.candidates:
            if wanted in (c.code.casefold(), c.name.casefold()):
                return c
        return None


def open_loads(session: Session) -> dict[int, int]:
    """Open cases per provider id: allocated (offered or accepted) and not closed/withdrawn."""
    rows = session.execute(
        select(col(Case.provider_id), func.count())
        .where(col(Case.provider_id).is_not(None), col(Case.state).not_in(list(FINAL_STATES)))
        .group_by(col(Case.provider_id))
    ).all()
    return {int(pid): int(n) for pid, n in rows}


def _last_allocations(session: Session) -> dict[int, int]:
    """Each provider's most recent allocation, as its row id.

    Row ids follow the order allocations were recorded, which is what a rota means;
    ``allocated_at`` can be back-dated (``--at``) and two can share an instant. One
    correlated ``max`` per provider reads the end of the provider index (microseconds),
    where a GROUP BY over every allocation ever made grows with the years.
    """
    latest = (
        select(func.max(col(Allocation.id)))
        .where(col(Allocation.provider_id) == col(Provider.id))
        .scalar_subquery()
    )
    rows = session.execute(select(col(Provider.id), latest)).all()
    return {int(pid): int(last) for pid, last in rows if last is not None}


def matching_conflict(text: str, keys: Iterable[str]) -> str | None:
    """The first declared conflict key found in ``text`` as whole words, ignoring case.

    Whole words, so a conflict with "Ash School" does not catch "Oakash Schoolhouse".
    """
    haystack = text.casefold()
    for key in keys:
        needle = key.strip().casefold()
        if needle and re.search(rf"(?<!\w){re.escape(needle)}(?!\w)", haystack):
            return key.strip()
    return None


def _capacity(rules: AllocationRules, code: str) -> float:
    return max(0.0, float(rules.capacity.get(code, rules.default_capacity)))


def _resolve(providers: Sequence[Provider], names: Iterable[str], field: str) -> list[Provider]:
    """Providers by code or name; a typo names the field and lists the known codes."""
    found: list[Provider] = []
    for raw in names:
        wanted = raw.strip().casefold()
        if not wanted:
            continue
        match = next(
            (p for p in providers if wanted in (p.code.casefold(), p.name.casefold())), None
        )
        if match is None:
            known = ", ".join(p.code for p in providers)
            raise ValidationFailed(
                f"{field}: no provider {raw.strip()!r}; use one of {known}", field=field
            )
        found.append(match)
    return found


def _case_history(session: Session, case: Case) -> tuple[dict[int, str], set[int]]:
    """(provider id → live allocation status, provider ids that declined this case)."""
    live: dict[int, str] = {}
    declined: set[int] = set()
    for provider_id, status in session.execute(
        select(col(Allocation.provider_id), col(Allocation.status)).where(
            col(Allocation.case_id) == case.id
        )
    ).all():
        if status == AllocationStatus.declined:
            declined.add(int(provider_id))
        elif status in (AllocationStatus.offered, AllocationStatus.accepted):
            live[int(provider_id)] = str(status)
    return live, declined


def _cases_text(n: int) -> str:
    return f"{n} case" if n == 1 else f"{n} cases"


def _load_text(c: Candidate, rules: AllocationRules) -> str:
    if c.capacity == rules.default_capacity:
        return _cases_text(c.open_cases)
    return f"{_cases_text(c.open_cases)}, capacity {c.capacity:g}"


def suggest(
    session: Session,
    case: Case,
    settings: Settings,
    *,
    preferred: str | None = None,
    excluded: Sequence[str] = (),
    school: str = "",
) -> Suggestion:
    """Suggest a provider for ``case`` and say why, naming every provider left out.

    ``preferred`` is the family's choice (code or name), ``excluded`` the providers the
    adviser rules out for this case, ``school`` any extra text (the child's school, an
    LA team) to check declared conflicts against besides the case summary.
    """
    rules = settings.allocation
    providers = list(
        session.execute(
            select(Provider).where(col(Provider.active)).order_by(col(Provider.id))
        ).scalars()
    )
    # Config order is the final tie-break (it is the commissioners' list order).
    order = {p.code: i for i, p in enumerate(settings.providers)}
    providers.sort(key=lambda p: (order.get(p.code, len(order)), p.id or 0))
    wanted = _resolve(providers, [preferred] if preferred else [], "preferred")
    ruled_out = {p.id for p in _resolve(providers, excluded, "excluded")}
    loads = open_loads(session)
    last = _last_allocations(session)
    live, declined = _case_history(session, case) if case.id is not None else ({}, set())
    text = f"{case.summary}\n{school}"

    candidates: list[Candidate] = []
    for p in providers:
        assert p.id is not None
        capacity = _capacity(rules, p.code)
        why: str | None = None
        conflict = matching_conflict(text, rules.conflicts.get(p.code, []))
        if p.id in live:
            why = f"already holds this case ({live[p.id]})"
        elif conflict is not None:
            why = f"declared conflict ({conflict})"
        elif p.id in ruled_out:
            why = "excluded for this case by the adviser"
        elif p.id in declined:
            why = "declined this case before"
        elif capacity <= 0:
            why = "capacity 0 (taking no new cases)"
        candidates.append(
            Candidate(p.id, p.code, p.name, loads.get(p.id, 0), capacity, last.get(p.id), why)
        )

    available = [c for c in candidates if c.excluded is None]
    exclusions = [f"{c.name} excluded: {c.excluded}" for c in candidates if c.excluded]
    reasons: list[str] = []
    choice: Candidate | None = None
    preferred_code = wanted[0].code if wanted else None
    if preferred_code is not None:
        pref = next(c for c in candidates if c.code == preferred_code)
        if pref.excluded is None:
            choice = pref
            reasons.append(
                f"{pref.name}: the family's preferred provider ({_load_text(pref, rules)} open)"
            )
        else:
            reasons.append(f"The family's preference, {pref.name}, is excluded: {pref.excluded}")
    if choice is None and available:
        # Lowest load first; among equals, the one allocated longest ago (never = first).
        ranked = sorted(
            available,
            key=lambda c: (c.load, c.last_allocation_id or 0, order.get(c.code, len(order))),
        )
        choice = ranked[0]
        tied = [c for c in ranked[1:] if c.load == choice.load]
        what = (
            "lowest open load"
            if choice.capacity == rules.default_capacity
            else "lowest open load for its capacity"
        )
        reason = f"{choice.name}: {what} ({_load_text(choice, rules)})"
        if tied:
            names = ", ".join(c.name for c in tied)
            reason += f"; level with {names}, and allocated a case least recently"
        reasons.append(reason)
    if choice is None:
        reasons.append(
            "No provider can be suggested: every provider is excluded; allocate with an"
            " override reason or ask a manager"
        )
    reasons.extend(exclusions)
    return Suggestion(choice, tuple(reasons), tuple(candidates), preferred_code)


def check_override(suggested: Suggestion | str | None, chosen: str, reason: str) -> None:
    """Refuse an allocation that departs from the suggestion without a reason.

    ``suggested`` is the :class:`Suggestion` (or just its provider code, or None when
    nothing could be suggested); ``chosen`` a provider code or name. The refusal names
    the reason field (``override_reason``) for forms, and says in words what to do.
    """
    if isinstance(suggested, Suggestion):
        picked = suggested.find(chosen)
        target = suggested.provider
        if target is not None and picked is not None and picked.code == target.code:
            return
        if reason.strip():
            return
        chosen_name = picked.name if picked else chosen.strip()
        if picked is not None and picked.excluded:
            why = f"{chosen_name} is excluded ({picked.excluded})"
        else:
            why = f"{chosen_name} is not the suggested provider"
        if target is not None:
            advice = (
                f"the suggestion is {target.name} ({suggested.reasons[0]}); allocate to"
                f" {target.name}, or give the reason for choosing {chosen_name} instead"
            )
        else:
            advice = "no provider could be suggested; give the reason for this choice"
        raise ValidationFailed(f"{why}: {advice}.", field="override_reason")
    code = (suggested or "").strip().casefold()
    if code and chosen.strip().casefold() == code:
        return
    if reason.strip():
        return
    advice = f"allocate to {suggested}, or" if code else "nothing was suggested;"
    raise ValidationFailed(
        f"{chosen.strip()} is not the suggested provider: {advice} give the reason for this"
        " choice.",
        field="override_reason",
    )


def can_allocate(case: Case) -> str | None:
    """Why this case cannot be given to a provider now, or None when it can."""
    if case.state in FINAL_STATES:
        return f"the case is {state_words(case.state)}"
    if case.kind == CaseKind.mediation and case.state in (
        CaseState.declined,
        CaseState.certificate_issued,
        CaseState.appeal_ready,
    ):
        if case.state != CaseState.declined and case.certificate_type == "not_arranged":
            return None  # the meeting may still happen after a deemed certificate
        return f"the case is {state_words(case.state)}, past the point where a mediator is needed"
    return None


@runs_again_as_writer
def allocate(
    session: Session,
    reference: str,
    provider: str,
    *,
    now: dt.datetime,
    actor: Actor,
    settings: Settings,
    note: str = "",
    override_reason: str = "",
    preferred: str | None = None,
    excluded: Sequence[str] = (),
    school: str = "",
    expected_version: int | None = None,
) -> tuple[Allocation, Suggestion]:
    """Offer the case to a provider under the rules; it has a set time to accept or decline.

    The suggestion is worked out afresh at this moment, so an adviser who chose from a
    suggestion that has since changed (another case was allocated meanwhile) is told
    the new one and can follow it or give a reason. A disagreement-resolution case
    that has been advised moves to ``allocated`` in the same transaction.
    """
    now = require_aware(now)
    today = dl.local_date(now)
    with case_transaction(session, reference):
        case, family, _old = load_case(session, reference)
        check_actor_may_see(case, actor)
        check_seen_version(case, expected_version)
        if actor.is_provider:
            raise NotPermitted(
                "Provider staff cannot allocate cases; ask the IAS adviser to re-allocate."
            )
        refuse_if_ended(case, "allocate a provider", actor)
        why_not = can_allocate(case)
        if why_not:
            raise TransitionRefused(f"Cannot allocate a provider: {why_not}.")
        with session.no_autoflush:
            suggestion = suggest(
                session, case, settings, preferred=preferred, excluded=excluded, school=school
            )
            chosen = suggestion.find(provider)
            if chosen is None:
                known = ", ".join(c.name for c in suggestion.candidates)
                raise ValidationFailed(
                    f"Provider: there is no provider called {provider.strip()!r}; choose one"
                    f" of {known}.",
                    field="provider",
                )
            check_override(suggestion, provider, override_reason)
            reason = override_reason.strip() if chosen.code != suggestion.code else ""
            row = session.get(Provider, chosen.provider_id)
            assert row is not None
            clocks = Clocks(session, case, now)
            previous = live_allocation(session, case)
            if previous is not None:
                if previous.provider_id == row.id:
                    raise ValidationFailed(
                        f"{case.reference} is already allocated to {row.name}.", field="provider"
                    )
                previous.status = AllocationStatus.ended
                previous.responded_at = previous.responded_at or now
                clocks.cancel("re-allocated", [DeadlineKind.allocation_acceptance])
            allocation = Allocation(
                case_id=case.id,  # type: ignore[arg-type]
                provider_id=row.id,  # type: ignore[arg-type]
                status=AllocationStatus.offered,
                allocated_at=now,
                allocated_by=actor.id,
                note=note,
                override_reason=reason,
            )
            session.add(allocation)
            from_state = case.state
            case.provider_id = row.id
            case.updated_at = now
            clocks.open(
                dl.service_target(
                    DeadlineKind.allocation_acceptance,
                    today,
                    settings.allocation_acceptance_working_days,
                    f"allocated to {row.name}",
                    calendar=settings.calendars.service,
                )
            )
            if case.kind == CaseKind.disagreement and case.state == CaseState.advised:
                flow_for(case).send("allocate")
                _run_effect(session, case, "allocate", clocks, now, settings, actor, from_state)
            data = {"provider": row.code}
            if reason:
                data["override_reason"] = reason
            record_change(
                session,
                case,
                actor=actor,
                event="allocate_provider",
                at=now,
                from_state=from_state,
                settings=settings,
                data=data,
                note=note,
                family=family,
                provider=row,
                clocks=clocks,
            )
        session.commit()
    return allocation, suggestion


def _run_effect(
    session: Session,
    case: Case,
    event: str,
    clocks: Clocks,
    now: dt.datetime,
    settings: Settings,
    actor: Actor,
    from_state: str,
) -> None:
    """Apply a flow event's declared effect inside an allocation change."""
    spec = EVENTS[(CaseKind(case.kind), event)]
    if spec.effect is not None:
        step = Step.begin(session, case, now=now, settings=settings, actor=actor, clocks=clocks)
        step.from_state = from_state
        spec.effect(step)


@runs_again_as_writer
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
    now = require_aware(now)
    verb = "accept" if accept else "decline"
    with case_transaction(session, reference):
        case, family, _provider = load_case(session, reference)
        check_actor_may_see(case, actor)
        with session.no_autoflush:
            refuse_if_ended(case, f"{verb} the case", actor)
            allocation = live_allocation(session, case)
            if allocation is None or allocation.status != AllocationStatus.offered:
                raise TransitionRefused(
                    f"Cannot {verb} the case: {case.reference} has no allocation waiting for an"
                    " answer."
                )
            if not accept and not note.strip():
                raise ValidationFailed(
                    "Reason: say why the case is declined, so the adviser can re-allocate it.",
                    field="note",
                )
            clocks = Clocks(session, case, now)
            from_state = case.state
            allocation.responded_at = now
            allocation.responded_by = actor.id
            if accept:
                allocation.status = AllocationStatus.accepted
                clocks.meet(
                    [DeadlineKind.allocation_acceptance],
                    done_on=dl.local_date(now),
                    reason="allocation accepted",
                )
            else:
                allocation.status = AllocationStatus.declined
                clocks.cancel("allocation declined", [DeadlineKind.allocation_acceptance])
                if case.kind == CaseKind.disagreement and case.state == CaseState.allocated:
                    # Back to the adviser for re-allocation, with the allocation target again.
                    flow_for(case).send("return_to_adviser")
                    _run_effect(
                        session,
                        case,
                        "return_to_adviser",
                        clocks,
                        now,
                        settings,
                        actor,
                        from_state,
                    )
                elif case.state not in (CaseState.requested, CaseState.advised):
                    raise TransitionRefused(
                        f"Cannot decline: {case.reference} is already"
                        f" {state_words(case.state)} with this provider; ask the adviser to"
                        " re-allocate."
                    )
                case.provider_id = None
            case.updated_at = now
            event_name = "accept_allocation" if accept else "decline_allocation"
            record_change(
                session,
                case,
                actor=actor,
                event=event_name,
                at=now,
                from_state=from_state,
                settings=settings,
                data=(
                    {"provider_id": allocation.provider_id}
                    if accept
                    else {"provider_id": allocation.provider_id, "reason": note}
                ),
                note=note,
                family=family,
                provider=session.get(Provider, allocation.provider_id),
                clocks=clocks,
            )
        session.commit()
    return allocation


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
    known = ", ".join(p.name for p in providers) or "none are set up yet"
    raise NotFound(f"There is no provider called {name_or_code.strip()!r}. Providers: {known}.")
