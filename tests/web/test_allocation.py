"""Allocation suggestions: rotation by open load, capacity, conflicts, exclusions, preference.

The rules decide what the adviser is offered; the adviser decides, and a departure from
the suggestion is only accepted with a reason (kept on the allocation and the audit
trail). Pure rule checks first, then the rules against real rows on both databases.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlmodel import Session, col

from casework import cases
from casework.cases import allocation as rules
from casework.config import AllocationRules, Settings
from casework.models import Allocation, Case, CaseEvent
from tests.conftest import ADVISER, at
from tests.factories import advance, allocate_to, create_case

NOW = at("2026-11-10")


def _candidate(code: str, name: str, excluded: str | None = None) -> rules.Candidate:
    return rules.Candidate(1, code, name, 0, 1.0, None, excluded)


def _suggestion(chosen: rules.Candidate | None, *others: rules.Candidate) -> rules.Suggestion:
    candidates = ((chosen,) if chosen else ()) + others
    reasons = (f"{chosen.name}: lowest open load (0 cases)",) if chosen else ("none",)
    return rules.Suggestion(chosen, reasons, candidates)


# --- Pure rules --------------------------------------------------------------------------


def test_conflicts_match_whole_words_ignoring_case() -> None:
    keys = ["Oakwood High", "SEN Team North"]
    assert rules.matching_conflict("Child attends OAKWOOD HIGH school", keys) == "Oakwood High"
    assert rules.matching_conflict("the sen team north refused", keys) == "SEN Team North"
    assert rules.matching_conflict("Oakwood Highfield Academy", keys) is None
    assert rules.matching_conflict("Noakwood High", keys) is None
    assert rules.matching_conflict("anything", ["", "  "]) is None


def test_following_the_suggestion_needs_no_reason() -> None:
    kids = _candidate("kids", "KIDS")
    suggestion = _suggestion(kids, _candidate("collis", "Collis Mediation"))
    rules.check_override(suggestion, "kids", "")
    rules.check_override(suggestion, "KIDS", "")  # by name, any case


def test_departing_from_the_suggestion_needs_a_reason() -> None:
    kids = _candidate("kids", "KIDS")
    suggestion = _suggestion(kids, _candidate("collis", "Collis Mediation"))
    with pytest.raises(cases.ValidationFailed) as refused:
        rules.check_override(suggestion, "collis", "  ")
    assert refused.value.field == "override_reason"
    message = str(refused.value)
    assert "Collis Mediation is not the suggested provider" in message
    assert "the suggestion is KIDS" in message
    assert "give the reason for choosing" in message
    rules.check_override(suggestion, "collis", "family asked for Collis after a good experience")


def test_choosing_an_excluded_provider_says_why_it_was_excluded() -> None:
    suggestion = _suggestion(
        _candidate("kids", "KIDS"),
        _candidate("collis", "Collis Mediation", excluded="declared conflict (Oakwood High)"),
    )
    with pytest.raises(cases.ValidationFailed, match=r"Collis Mediation is excluded \(declared"):
        rules.check_override(suggestion, "collis", "")


def test_when_nothing_could_be_suggested_any_choice_needs_a_reason() -> None:
    nothing = _suggestion(None, _candidate("kids", "KIDS", excluded="capacity 0"))
    with pytest.raises(cases.ValidationFailed, match="no provider could be suggested"):
        rules.check_override(nothing, "kids", "")
    rules.check_override(nothing, "kids", "urgent: manager agreed")
    with pytest.raises(cases.ValidationFailed, match="nothing was suggested"):
        rules.check_override(None, "kids", "")


def test_check_override_accepts_a_bare_code_for_the_pages() -> None:
    rules.check_override("kids", "KIDS", "")
    with pytest.raises(cases.ValidationFailed, match="allocate to kids"):
        rules.check_override("kids", "collis", "")
    rules.check_override("kids", "collis", "family preference")


def test_a_provider_with_no_open_cases_has_zero_load_and_no_capacity_is_infinite() -> None:
    assert rules.Candidate(1, "a", "A", 4, 2.0, None).load == 2.0
    assert rules.Candidate(1, "a", "A", 0, 0.0, None).load == float("inf")


# --- Against the database ------------------------------------------------------------------


def _allocated(session: Session, settings: Settings, provider: str, *, summary: str = "") -> Case:
    case = create_case(session, settings, summary=summary)
    allocate_to(session, case.reference, provider, now=NOW, actor=ADVISER, settings=settings)
    return case


def _spread(session: Session, settings: Settings, loads: dict[str, int]) -> None:
    for code, n in loads.items():
        for _ in range(n):
            _allocated(session, settings, code)


def test_lowest_open_load_is_suggested(session: Session, settings: Settings) -> None:
    _spread(session, settings, {"solution-talk": 2, "collis": 1, "link": 1, "together-trust": 3})
    case = create_case(session, settings)
    suggestion = rules.suggest(session, case, settings)
    assert suggestion.code == "kids"
    assert suggestion.reasons[0] == "KIDS: lowest open load (0 cases)"
    loads = {c.code: c.open_cases for c in suggestion.candidates}
    assert loads == {"solution-talk": 2, "collis": 1, "kids": 0, "link": 1, "together-trust": 3}


def test_closed_and_withdrawn_cases_do_not_count_as_load(
    session: Session, settings: Settings
) -> None:
    _spread(session, settings, {"solution-talk": 1, "collis": 1, "link": 1, "together-trust": 1})
    kids_case = _allocated(session, settings, "kids")
    _allocated(session, settings, "kids")
    advance(session, settings, kids_case, "withdraw", reason="family moved away")
    assert rules.open_loads(session)[kids_case.provider_id or 0] == 1
    suggestion = rules.suggest(session, create_case(session, settings), settings)
    # Everyone now carries one case: the tie goes to the provider allocated least recently.
    assert suggestion.code == "solution-talk"
    assert "level with" in suggestion.reasons[0]


def test_ties_rotate_to_the_provider_allocated_least_recently(
    session: Session, settings: Settings
) -> None:
    for code in ("kids", "link", "collis", "together-trust", "solution-talk"):
        _allocated(session, settings, code)
    # Equal loads (1 each); KIDS had the first allocation, so it is next in the rota.
    suggestion = rules.suggest(session, create_case(session, settings), settings)
    assert suggestion.code == "kids"
    assert suggestion.reasons[0].startswith("KIDS: lowest open load (1 case); level with")


def test_capacity_weights_the_load(session: Session, settings: Settings) -> None:
    settings.allocation = AllocationRules(capacity={"together-trust": 3.0})
    _spread(
        session,
        settings,
        {"solution-talk": 1, "collis": 1, "kids": 1, "link": 1, "together-trust": 2},
    )
    suggestion = rules.suggest(session, create_case(session, settings), settings)
    assert suggestion.code == "together-trust"  # 2 / 3 is lighter than 1 / 1
    assert suggestion.reasons[0] == (
        "Together Trust: lowest open load for its capacity (2 cases, capacity 3)"
    )


def test_capacity_zero_takes_no_new_cases(session: Session, settings: Settings) -> None:
    settings.allocation = AllocationRules(capacity={"solution-talk": 0})
    suggestion = rules.suggest(session, create_case(session, settings), settings)
    assert suggestion.code == "collis"
    assert "Solution Talk excluded: capacity 0 (taking no new cases)" in suggestion.reasons


def test_declared_conflicts_exclude_a_provider(session: Session, settings: Settings) -> None:
    settings.allocation = AllocationRules(
        conflicts={"solution-talk": ["Oakwood High"], "collis": ["Ashdown Primary"]}
    )
    case = create_case(session, settings, summary="Year 9 at Oakwood High; EHC plan refused")
    suggestion = rules.suggest(session, case, settings, school="Ashdown Primary")
    assert suggestion.code == "kids"
    assert "Solution Talk excluded: declared conflict (Oakwood High)" in suggestion.reasons
    assert "Collis Mediation excluded: declared conflict (Ashdown Primary)" in suggestion.reasons


def test_the_adviser_can_exclude_providers_for_one_case(
    session: Session, settings: Settings
) -> None:
    case = create_case(session, settings)
    suggestion = rules.suggest(
        session, case, settings, excluded=["solution-talk", "Collis Mediation"]
    )
    assert suggestion.code == "kids"
    assert "Collis Mediation excluded: excluded for this case by the adviser" in suggestion.reasons
    with pytest.raises(cases.ValidationFailed) as refused:
        rules.suggest(session, case, settings, excluded=["nobody"])
    assert refused.value.field == "excluded"
    assert "use one of solution-talk, collis, kids, link, together-trust" in str(refused.value)


def test_family_preference_is_honoured(session: Session, settings: Settings) -> None:
    _spread(session, settings, {"link": 3})
    suggestion = rules.suggest(
        session, create_case(session, settings), settings, preferred="Link Mediation Ltd"
    )
    assert suggestion.code == "link"
    assert (
        suggestion.reasons[0]
        == "Link Mediation Ltd: the family's preferred provider (3 cases open)"
    )


def test_family_preference_is_not_honoured_when_excluded(
    session: Session, settings: Settings
) -> None:
    settings.allocation = AllocationRules(conflicts={"link": ["Oakwood High"]})
    case = create_case(session, settings, summary="Oakwood High")
    suggestion = rules.suggest(session, case, settings, preferred="link")
    assert suggestion.code == "solution-talk"
    assert suggestion.reasons[0] == (
        "The family's preference, Link Mediation Ltd, is excluded: declared conflict (Oakwood High)"
    )
    assert suggestion.reasons[1].startswith("Solution Talk: lowest open load")
    with pytest.raises(cases.ValidationFailed) as refused:
        rules.suggest(session, case, settings, preferred="Mediation R Us")
    assert refused.value.field == "preferred"


def test_a_provider_that_declined_is_not_suggested_again(
    session: Session, settings: Settings
) -> None:
    case = _allocated(session, settings, "solution-talk")
    held = rules.suggest(session, case, settings)
    assert "Solution Talk excluded: already holds this case (offered)" in held.reasons
    cases.respond_to_allocation(
        session,
        case.reference,
        accept=False,
        now=NOW,
        actor=ADVISER,
        settings=settings,
        note="no mediator free this month",
    )
    suggestion = rules.suggest(session, case, settings)
    assert suggestion.code == "collis"
    assert "Solution Talk excluded: declined this case before" in suggestion.reasons


def test_when_every_provider_is_excluded_nothing_is_suggested(
    session: Session, settings: Settings
) -> None:
    settings.allocation = AllocationRules(
        default_capacity=1.0,
        capacity=dict.fromkeys(("solution-talk", "collis", "kids", "link", "together-trust"), 0.0),
    )
    suggestion = rules.suggest(session, create_case(session, settings), settings)
    assert suggestion.provider is None
    assert suggestion.reasons[0].startswith("No provider can be suggested")


def test_allocate_following_the_suggestion(session: Session, settings: Settings) -> None:
    case = create_case(session, settings)
    allocation, suggestion = rules.allocate(
        session, case.reference, "solution-talk", now=NOW, actor=ADVISER, settings=settings
    )
    assert suggestion.code == "solution-talk"
    assert allocation.override_reason == ""
    event = session.execute(
        select(CaseEvent).where(
            col(CaseEvent.case_id) == case.id, col(CaseEvent.event) == "allocate_provider"
        )
    ).scalar_one()
    assert event.data == {"provider": "solution-talk"}


def test_allocate_against_the_suggestion_needs_and_records_a_reason(
    session: Session, settings: Settings
) -> None:
    case = create_case(session, settings)
    with pytest.raises(cases.ValidationFailed) as refused:
        rules.allocate(session, case.reference, "kids", now=NOW, actor=ADVISER, settings=settings)
    assert refused.value.field == "override_reason"
    assert "the suggestion is Solution Talk" in str(refused.value)
    assert session.execute(select(Allocation)).first() is None
    allocation, _ = rules.allocate(
        session,
        case.reference,
        "kids",
        now=NOW,
        actor=ADVISER,
        settings=settings,
        override_reason="KIDS already supports this family",
    )
    assert allocation.override_reason == "KIDS already supports this family"
    event = session.execute(
        select(CaseEvent).where(
            col(CaseEvent.case_id) == case.id, col(CaseEvent.event) == "allocate_provider"
        )
    ).scalar_one()
    assert event.data["override_reason"] == "KIDS already supports this family"


def test_allocate_to_an_unknown_provider_names_the_field(
    session: Session, settings: Settings
) -> None:
    case = create_case(session, settings)
    with pytest.raises(cases.ValidationFailed) as refused:
        rules.allocate(session, case.reference, "acme", now=NOW, actor=ADVISER, settings=settings)
    assert refused.value.field == "provider"


def test_provider_staff_cannot_allocate(session: Session, settings: Settings) -> None:
    case = _allocated(session, settings, "kids")
    other = create_case(session, settings)
    kids_staff = cases.Actor(
        id="user:k@kids.example.org", role="provider", channel="api", provider_id=case.provider_id
    )
    with pytest.raises(rules.NotPermitted):
        rules.allocate(
            session, case.reference, "link", now=NOW, actor=kids_staff, settings=settings
        )
    with pytest.raises(cases.NotFound):
        rules.allocate(
            session, other.reference, "kids", now=NOW, actor=kids_staff, settings=settings
        )


def test_closed_cases_cannot_be_allocated(session: Session, settings: Settings) -> None:
    case = create_case(session, settings)
    advance(session, settings, case, "withdraw", reason="resolved informally")
    with pytest.raises(cases.TransitionRefused, match=r"is withdrawn\. Only an IAS manager"):
        rules.allocate(
            session, case.reference, "solution-talk", now=NOW, actor=ADVISER, settings=settings
        )
