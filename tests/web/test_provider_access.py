"""A provider sees a case only while it has it, or ran its meeting: by every door.

The rule (``casework.cases.provider_view.provider_may_open``): Solution Talk's staff
open a case while it is offered to Solution Talk or accepted by it, or once Solution
Talk held its meeting, until the provider retention after the case ended. A case
whose allocation ended before any meeting (the family declined mediation or withdrew,
the adviser gave it to Collis Mediation, Solution Talk declined the offer) leaves at
once, and answers as a case that does not exist.

Eight cases, one per way an allocation goes, each with a provider's document where
the flow makes one (the meeting invitation; the mediator's certificate after a
meeting) and the allocation notice sent to the provider. Each test is one door, and
asks it about every case at two moments: within the retention of the cases that
ended on Friday 20 November 2026, and an hour past it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from casework import auth, cases
from casework.cases.provider_view import DOCUMENT_KINDS
from casework.models import Case, User
from tests.conftest import ADVISER, at
from tests.factories import advance, allocate_to, create_case
from tests.web.conftest import Web, make_case, provider_actor

ENDED = at("2026-11-20", "15:00")
WITHIN = ENDED + dt.timedelta(days=90)
PAST = ENDED + dt.timedelta(days=90, hours=1)
MEETING_DAY = "2026-11-19"
NOT_YOURS = "There is no case of yours at this address"


@dataclass(frozen=True)
class Listed:
    """One case of the matrix, and who should see it when."""

    name: str  # the family's name: unique, so a list showing it is caught
    reference: str
    # The provider staff ("provider_a", "provider_b") who may open it, within the
    # retention and past it.
    within: frozenset[str]
    past: frozenset[str]


def _schedule(s: Session, web: Web, case: Case) -> None:
    """A meeting arranged on 19 November: the provider is sent the invitation."""
    advance(
        s, web.settings, case, "schedule_meeting", now=at("2026-11-11"),
        meeting_on=MEETING_DAY, meeting_time="10:00",
    )  # fmt: skip


def _hold(s: Session, web: Web, case: Case) -> None:
    advance(
        s, web.settings, case, "record_meeting", now=at(MEETING_DAY, "12:00"),
        meeting_held_on=MEETING_DAY, outcome="none",
    )  # fmt: skip


def _mediating(web: Web, name: str) -> Case:
    """Accepted by Solution Talk, mediation chosen, a meeting arranged."""
    case = make_case(web, provider="solution-talk", mediating=True, name=name)
    with web.session() as s:
        _schedule(s, web, case)
    return case


def _offered(web: Web, name: str) -> Case:
    """Offered to Solution Talk, not yet answered; the adviser arranged the meeting."""
    case = make_case(web, provider="solution-talk", name=name)
    with web.session() as s:
        advance(s, web.settings, case, "choose_mediation", la_told_on="2026-11-10")
        _schedule(s, web, case)
    return case


def _declined_while_mediating(web: Web, name: str) -> Case:
    case = _mediating(web, name)
    with web.session() as s:
        advance(s, web.settings, case, "decline", now=ENDED, declined_on="2026-11-20")
    return case


def _withdrawn(web: Web, name: str, *, after_meeting: bool) -> Case:
    case = _mediating(web, name)
    with web.session() as s:
        if after_meeting:
            _hold(s, web, case)
        advance(s, web.settings, case, "withdraw", now=ENDED, reason="The school agreed")
    return case


def _closed_after_meeting(web: Web, name: str) -> Case:
    case = _mediating(web, name)
    with web.session() as s:
        _hold(s, web, case)
        cases.advance(
            s, case.reference, "issue_certificate", now=at(MEETING_DAY, "16:00"),
            actor=provider_actor(web, "provider_a"), settings=web.settings, data={},
        )  # fmt: skip
        advance(s, web.settings, case, "confirm_appeal_ready", now=at("2026-11-20", "09:00"))
        advance(s, web.settings, case, "close", now=ENDED, outcome="no_appeal")
    return case


def _reallocated(web: Web, name: str) -> Case:
    """Solution Talk had it (and was sent the invitation); the adviser gave it to Collis."""
    case = _mediating(web, name)
    with web.session() as s:
        allocate_to(s, case.reference, "collis", now=ENDED, settings=web.settings)
    return case


def _offer_declined(web: Web, name: str) -> Case:
    """A disagreement case offered to Solution Talk, its meeting arranged by the adviser,
    and Solution Talk declined it: back to the adviser."""
    with web.session() as s:
        case = create_case(s, web.settings, kind="disagreement", name=name)
        advance(s, web.settings, case, "advise")
        allocate_to(s, case.reference, "solution-talk", now=at("2026-11-10", "11:00"),
                    settings=web.settings)  # fmt: skip
        _schedule(s, web, case)
        cases.respond_to_allocation(
            s, case.reference, accept=False, now=ENDED,
            actor=provider_actor(web, "provider_a"), settings=web.settings,
            note="No mediator free before Christmas",
        )  # fmt: skip
    return case


A, B = "provider_a", "provider_b"
NOBODY: frozenset[str] = frozenset()
SCENARIOS: list[tuple[str, Callable[[Web, str], Case], frozenset[str], frozenset[str]]] = [
    ("Olive Offered", _offered, frozenset({A}), frozenset({A})),
    ("Ada Accepted", _mediating, frozenset({A}), frozenset({A})),
    ("Dora Declined", _declined_while_mediating, NOBODY, NOBODY),
    ("Wren Withdrawn", lambda w, n: _withdrawn(w, n, after_meeting=False), NOBODY, NOBODY),
    ("Hal Heldthen", lambda w, n: _withdrawn(w, n, after_meeting=True), frozenset({A}), NOBODY),
    ("Cleo Closed", _closed_after_meeting, frozenset({A}), NOBODY),
    ("Rex Reallocated", _reallocated, frozenset({B}), frozenset({B})),
    ("Nell Notaccepted", _offer_declined, NOBODY, NOBODY),
]


@pytest.fixture
def matrix(web: Web) -> list[Listed]:
    built = []
    for name, build, within, past in SCENARIOS:
        case = build(web, name)
        built.append(Listed(name, case.reference, within, past))
    return built


def _api(web: Web, who: str) -> TestClient:
    with web.session() as s:
        user = s.get(User, web.users[who].id)
        assert user is not None
        token = auth.create_api_token(s, user, name="access", now=web.clock.now)
    return TestClient(web.app, headers={"Authorization": f"Bearer {token}"})


def _provider_documents(web: Web, reference: str) -> list[int]:
    """The case's documents of the kinds a provider reads, found as the adviser."""
    with web.session() as s:
        found = cases.list_case_documents(s, reference, ADVISER)
    return [d.id for d in found if d.kind in DOCUMENT_KINDS]


# Each door: who (provider staff), the case -> whether the door shows it.
Door = Callable[[Web, str, Listed], bool]


def _portal_list(web: Web, who: str, case: Listed) -> bool:
    page = web.browser(who).get("/portal")
    assert page.status_code == 200
    shown = case.reference in page.text
    # The family's name goes with the row: never listed without it, nor it without it.
    assert (case.name in page.text) == shown, case.name
    return shown


def _portal_case(web: Web, who: str, case: Listed) -> bool:
    page = web.browser(who).get(f"/portal/cases/{case.reference}")
    if page.status_code == 404:
        # In words, and the same words as a reference that never existed.
        unknown = web.browser(who).get("/portal/cases/MED-2026-9999")
        assert NOT_YOURS in page.text and unknown.status_code == 404
        assert NOT_YOURS in unknown.text
        assert case.name not in page.text
        return False
    assert page.status_code == 200, page.text
    return True


def _api_search(web: Web, who: str, case: Listed) -> bool:
    """The provider's search (the portal has none: its list is all it holds), by the
    reference and by the family's name; and the API's list of all its cases."""
    api = _api(web, who)
    found = []
    for params in ({"q": case.reference}, {"q": case.name}, {"limit": 200}):
        answer = api.get("/api/v1/cases", params=params)
        assert answer.status_code == 200, answer.text
        found.append(case.reference in {c["reference"] for c in answer.json()["items"]})
    assert len(set(found)) == 1, found
    return found[0]


def _api_case(web: Web, who: str, case: Listed) -> bool:
    answer = _api(web, who).get(f"/api/v1/cases/{case.reference}")
    assert answer.status_code in (200, 404), answer.text
    return answer.status_code == 200


def _api_documents(web: Web, who: str, case: Listed) -> bool:
    answer = _api(web, who).get(f"/api/v1/cases/{case.reference}/documents")
    assert answer.status_code in (200, 404), answer.text
    return answer.status_code == 200


def _document_by_number(web: Web, who: str, case: Listed) -> bool:
    """Each provider's document of the case fetched by its number, in the API and the
    portal: served, or the same 404 as a number that does not exist."""
    numbers = _provider_documents(web, case.reference)
    assert numbers, f"{case.name}: the flow made no provider's document to fetch"
    api, portal = _api(web, who), web.browser(who)
    served = []
    for number in numbers:
        for answer in (
            api.get(f"/api/v1/documents/{number}"),
            portal.get(f"/portal/cases/{case.reference}/documents/{number}"),
        ):
            assert answer.status_code in (200, 404), answer.text
            served.append(answer.status_code == 200)
    assert len(set(served)) == 1, served
    return served[0]


def _notices(web: Web, who: str, case: Listed) -> bool:
    """The provider's notices list, and the list asked for the case by its reference."""
    api = _api(web, who)
    listed = api.get("/api/v1/notices", params={"limit": 200})
    assert listed.status_code == 200, listed.text
    shown = case.reference in {n["reference"] for n in listed.json()["items"]}
    by_case = api.get("/api/v1/notices", params={"case": case.reference, "limit": 200})
    assert by_case.status_code == (200 if shown else 404), by_case.text
    if shown:
        assert by_case.json()["items"], "the provider was sent the allocation notice"
    return shown


def _deadlines(web: Web, who: str, case: Listed) -> bool:
    """The API's deadline list, in every status (the allocation clock opened for each)."""
    api = _api(web, who)
    shown = set()
    for status in ("open", "met", "missed", "cancelled"):
        answer = api.get("/api/v1/deadlines", params={"status": status, "limit": 200})
        assert answer.status_code == 200, answer.text
        shown |= {d["reference"] for d in answer.json()["items"]}
    return case.reference in shown


DOORS: dict[str, Door] = {
    "portal list": _portal_list,
    "portal case page": _portal_case,
    "search and the API list": _api_search,
    "provider notices list": _notices,
    "document by number": _document_by_number,
    "API case": _api_case,
    "API documents": _api_documents,
    "API deadlines list": _deadlines,
}


@pytest.mark.parametrize("door", list(DOORS))
def test_each_door_shows_a_case_only_while_the_provider_has_it_or_ran_its_meeting(
    web: Web, matrix: list[Listed], door: str
) -> None:
    ask = DOORS[door]
    for moment, expected in ((WITHIN, "within"), (PAST, "past")):
        web.clock.now = moment
        for case in matrix:
            may: frozenset[str] = getattr(case, expected)
            for who in (A, B):
                assert ask(web, who, case) == (who in may), (door, case.name, who, expected)


def test_a_declined_or_withdrawn_case_is_gone_at_once_not_after_the_retention(
    web: Web, matrix: list[Listed]
) -> None:
    """The day after the family declined or withdrew, before any meeting: nothing left
    for Solution Talk, though the retention has 89 days to run."""
    web.clock.now = ENDED + dt.timedelta(days=1)
    gone = [c for c in matrix if c.name in ("Dora Declined", "Wren Withdrawn")]
    kept = [c for c in matrix if c.name in ("Hal Heldthen", "Cleo Closed")]
    for case in gone:
        assert not _portal_list(web, A, case)
        assert not _api_case(web, A, case)
    for case in kept:
        assert _portal_list(web, A, case)
        assert _api_case(web, A, case)


def test_the_ias_still_opens_every_case(web: Web, matrix: list[Listed]) -> None:
    web.clock.now = PAST
    adviser = web.browser("adviser")
    for case in matrix:
        assert adviser.get(f"/cases/{case.reference}").status_code == 200, case.name
