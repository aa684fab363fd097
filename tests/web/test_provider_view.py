"""A provider sees only what is listed for it (casework.cases.provider_view), by every door.

The case: allocated first to Collis, who declined with a reason; re-allocated to
Solution Talk with an override reason; advised with an adviser-only note; viewed by
the adviser; mediation chosen and a meeting scheduled. Then Solution Talk's staff
read it through the API and the portal: each withheld thing is absent, each listed
thing present.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from casework import auth, cases
from casework.cases import provider_view
from casework.models import Notice, User
from tests.conftest import ADVISER, at
from tests.factories import allocate_to
from tests.web.conftest import Web, make_case, provider_actor

DECLINE_REASON = "Collis has a conflict with the school governors"
OVERRIDE_REASON = "Family asked for Solution Talk after a bad experience"
ADVISER_NOTE = "Mother mentioned a safeguarding referral last year"
ADVISER_ONLY_NOTE = "Father asked us not to tell the school about his job loss"
ADVISER_ONLY_CALL = "LA officer said off the record the panel is minded to refuse"
SHARED_NOTE = "The family would prefer a meeting after school hours"
ADVISER_EMAIL = "alice.adviser@ias.example.org"
CHILD = "Robin Example"


@dataclass
class Seen:
    api: str
    portal: str
    notices: str


@pytest.fixture
def seen(web: Web) -> Seen:
    case = make_case(web, child_name=CHILD, summary="Speech therapy in section F")
    ref = case.reference
    with web.session() as s:
        cases.advance(
            s,
            ref,
            "advise",
            now=at("2026-11-10"),
            actor=ADVISER,
            settings=web.settings,
            note=ADVISER_NOTE,
        )
        allocate_to(s, ref, "collis", now=at("2026-11-10", "11:00"), settings=web.settings)
        cases.respond_to_allocation(
            s,
            ref,
            accept=False,
            now=at("2026-11-10", "12:00"),
            actor=provider_actor(web, "provider_b"),
            settings=web.settings,
            note=DECLINE_REASON,
        )
        allocate_to(
            s,
            ref,
            "solution-talk",
            now=at("2026-11-10", "13:00"),
            settings=web.settings,
            override_reason=OVERRIDE_REASON,
        )
        cases.record_view(s, cases.get_case(s, ref), ADVISER, at("2026-11-10", "13:30"))
        cases.add_note(s, ref, text=ADVISER_ONLY_NOTE, now=at("2026-11-10", "13:35"), actor=ADVISER)
        cases.log_call(
            s,
            ref,
            call_on="2026-11-10",
            direction="in",
            who="LA officer",
            summary=ADVISER_ONLY_CALL,
            now=at("2026-11-10", "13:40"),
            actor=ADVISER,
        )
        cases.add_note(
            s, ref, text=SHARED_NOTE, shared=True, now=at("2026-11-10", "13:45"), actor=ADVISER
        )
        cases.respond_to_allocation(
            s,
            ref,
            accept=True,
            now=at("2026-11-10", "14:00"),
            actor=provider_actor(web, "provider_a"),
            settings=web.settings,
        )
        cases.advance(
            s,
            ref,
            "choose_mediation",
            now=at("2026-11-11"),
            actor=ADVISER,
            settings=web.settings,
            data={"la_told_on": "2026-11-11"},
        )
        cases.advance(
            s,
            ref,
            "schedule_meeting",
            now=at("2026-11-12"),
            actor=provider_actor(web, "provider_a"),
            settings=web.settings,
            data={"meeting_on": "2026-11-30", "meeting_time": "10:00"},
        )
        # A notice went to Collis about the first allocation.
        assert any(
            n.to_address == "referrals@collis.example.org" or n.recipient_role == "provider"
            for n in s.execute(select(Notice)).scalars()
        )
        user = s.get(User, web.users["provider_a"].id)
        assert user is not None
        token = auth.create_api_token(s, user, name="view", now=at("2026-11-12"))
    web.clock.now = at("2026-11-12", "15:00")
    client = TestClient(web.app)
    headers = {"Authorization": f"Bearer {token}"}
    api = client.get(f"/api/v1/cases/{ref}", headers=headers)
    assert api.status_code == 200, api.text
    notices = client.get("/api/v1/notices", params={"case": ref}, headers=headers)
    assert notices.status_code == 200, notices.text
    portal = web.browser("provider_a").get(f"/portal/cases/{ref}")
    assert portal.status_code == 200
    return Seen(api.text, portal.text, notices.text)


@pytest.mark.parametrize(
    "withheld",
    [
        DECLINE_REASON,  # another provider's decline reason
        OVERRIDE_REASON,  # why the adviser chose this provider
        ADVISER_NOTE,  # adviser-only notes
        ADVISER_ONLY_NOTE,  # a case note not marked shared
        ADVISER_ONLY_CALL,  # a logged call not marked shared
        ADVISER_EMAIL,  # IAS staff addresses
        "Collis",  # another provider's allocation and notices
        "viewed",  # the view log
    ],
    ids=[
        "decline-reason",
        "override-reason",
        "adviser-note",
        "adviser-only-case-note",
        "adviser-only-call",
        "staff-address",
        "other-provider",
        "view-log",
    ],
)
def test_what_a_provider_never_sees(seen: Seen, withheld: str) -> None:
    assert withheld not in seen.api
    assert withheld not in seen.portal
    assert withheld not in seen.notices


@pytest.mark.parametrize(
    ("listed", "api_form", "portal_form"),
    [
        ("child's name", CHILD, CHILD),
        ("the meeting date", "2026-11-30", "Monday 30 November 2026"),
        ("the 30-day clock", "mediation_meeting", "Mediation meeting held"),
        ("its own allocation", '"status":"accepted"', "Solution Talk"),
        ("the family's contact once accepted", "jo.family@example.org", "jo.family@example.org"),
        ("a note the adviser shared", SHARED_NOTE, SHARED_NOTE),
    ],
    ids=["child", "meeting", "meeting-clock", "allocation", "family-contact", "shared-note"],
)
def test_what_a_provider_sees(seen: Seen, listed: str, api_form: str, portal_form: str) -> None:
    assert api_form in seen.api, listed
    assert portal_form in seen.portal, listed


def test_every_listed_case_field_exists_on_the_case() -> None:
    """The list names real fields: a renamed column cannot silently drop out."""
    from casework.models import Case

    assert set(provider_view.CASE_FIELDS) <= set(Case.model_fields)


def test_the_family_contact_waits_for_acceptance(web: Web) -> None:
    case = make_case(web, provider="solution-talk")
    with web.session() as s:
        detail = cases.case_detail(
            s,
            case.reference,
            actor=provider_actor(web, "provider_a"),
            now=at("2026-11-10", "12:00"),
        )
    assert detail.family is None and detail.allocation is not None
    assert dt.date(2026, 11, 2) == detail.case.decision_date
