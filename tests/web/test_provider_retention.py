"""An ended case whose meeting its provider held drops out of the provider's lists after
the provider retention, by each door.

Solution Talk accepted two cases; it held the meeting of one, which is then withdrawn
on Friday 20 November 2026. The withdrawn case stays in Solution Talk's portal list
and API list for the configured 90 days, then drops out of both; the open case stays
throughout. The family's phone and email never reach the provider once the case has
ended. (A case whose allocation ended before any meeting leaves at once:
tests/web/test_provider_access.py.)
"""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient

from casework import auth, cases
from casework.config import Settings
from casework.models import User
from tests.conftest import ADVISER, at
from tests.web.conftest import Web, make_case

PHONE_TYPED = "07911 234987"
PHONE_STORED = "+447911234987"
EMAIL = "jo.retained@example.org"
ENDED = at("2026-11-20")
HELD = {"meeting_held_on": "2026-11-18", "outcome": "none"}


@pytest.fixture
def refs(web: Web) -> tuple[str, str]:
    ended = make_case(web, provider="solution-talk", mediating=True, phone=PHONE_TYPED, email=EMAIL)
    still_open = make_case(web, provider="solution-talk", accepted=True)
    with web.session() as s:
        # Solution Talk ran the meeting: it keeps the case's record for the retention.
        cases.advance(
            s, ended.reference, "record_meeting", now=at("2026-11-18", "15:00"),
            actor=ADVISER, settings=web.settings, data=HELD,
        )  # fmt: skip
        cases.advance(
            s,
            ended.reference,
            "withdraw",
            now=ENDED,
            actor=ADVISER,
            settings=web.settings,
            data={"reason": "The school agreed the support"},
        )
    return ended.reference, still_open.reference


def _api(web: Web) -> TestClient:
    with web.session() as s:
        user = s.get(User, web.users["provider_a"].id)
        assert user is not None
        token = auth.create_api_token(s, user, name="retention", now=web.clock.now)
    return TestClient(web.app, headers={"Authorization": f"Bearer {token}"})


def _api_refs(web: Web) -> list[str]:
    answer = _api(web).get("/api/v1/cases", params={"limit": 100})
    assert answer.status_code == 200, answer.text
    return [item["reference"] for item in answer.json()["items"]]


def _portal(web: Web) -> str:
    page = web.browser("provider_a").get("/portal")
    assert page.status_code == 200
    return page.text


def test_the_retention_is_90_days_unless_configured(settings: Settings) -> None:
    assert settings.provider_retention_days == 90


def test_an_ended_case_stays_in_the_portal_list_for_the_retention(
    web: Web, refs: tuple[str, str]
) -> None:
    ended, still_open = refs
    web.clock.now = ENDED + dt.timedelta(days=90)
    page = _portal(web)
    assert ended in page and still_open in page
    web.clock.now = ENDED + dt.timedelta(days=90, hours=1)
    page = _portal(web)
    assert ended not in page
    assert still_open in page


def test_an_ended_case_stays_in_the_api_list_for_the_retention(
    web: Web, refs: tuple[str, str]
) -> None:
    ended, still_open = refs
    web.clock.now = ENDED + dt.timedelta(days=90)
    assert sorted(_api_refs(web)) == sorted([ended, still_open])
    web.clock.now = ENDED + dt.timedelta(days=90, hours=1)
    assert _api_refs(web) == [still_open]
    # A search cannot bring it back either.
    found = _api(web).get("/api/v1/cases", params={"q": ended})
    assert found.json()["items"] == []


def test_a_shorter_configured_retention_drops_it_sooner(web: Web, refs: tuple[str, str]) -> None:
    ended, still_open = refs
    web.settings.provider_retention_days = 7
    web.clock.now = ENDED + dt.timedelta(days=8)
    assert ended not in _portal(web)
    assert _api_refs(web) == [still_open]


def test_the_family_contact_is_hidden_from_the_provider_once_the_case_ended(
    web: Web, refs: tuple[str, str]
) -> None:
    ended, _ = refs
    for moment in (ENDED + dt.timedelta(days=1), ENDED + dt.timedelta(days=90)):
        web.clock.now = moment
        api = _api(web).get(f"/api/v1/cases/{ended}")
        portal = web.browser("provider_a").get(f"/portal/cases/{ended}")
        for answer in (api, portal):
            assert answer.status_code == 200, answer.text
            assert PHONE_STORED not in answer.text
            assert "07911 234" not in answer.text
            assert EMAIL not in answer.text


def test_past_the_retention_the_case_itself_is_not_found_at_every_door(
    web: Web, refs: tuple[str, str]
) -> None:
    """A reference kept from the list opens nothing the list no longer shows: the same
    404 as a case that does not exist, in the portal and the API, and its clocks leave
    the provider's deadline list."""
    ended, still_open = refs
    api = _api(web)
    web.clock.now = ENDED + dt.timedelta(days=90)
    clocks = api.get("/api/v1/deadlines", params={"status": "cancelled", "limit": 200})
    assert ended in {d["reference"] for d in clocks.json()["items"]}
    web.clock.now = ENDED + dt.timedelta(days=90, hours=1)
    provider = web.browser("provider_a")
    for answer in (
        api.get(f"/api/v1/cases/{ended}"),
        api.get(f"/api/v1/cases/{ended}/documents"),
        api.post(f"/api/v1/cases/{ended}/events", json={"event": "report_not_arranged"}),
        provider.get(f"/portal/cases/{ended}"),
    ):
        assert answer.status_code == 404, answer.text
    for status in ("open", "cancelled", "met", "missed"):
        clocks = api.get("/api/v1/deadlines", params={"status": status, "limit": 200})
        assert clocks.status_code == 200, clocks.text
        assert ended not in {d["reference"] for d in clocks.json()["items"]}
    assert api.get(f"/api/v1/cases/{still_open}").status_code == 200
    assert provider.get(f"/portal/cases/{still_open}").status_code == 200
    assert web.browser("adviser").get(f"/cases/{ended}").status_code == 200


def test_an_anonymised_case_is_not_found_by_its_provider(web: Web, refs: tuple[str, str]) -> None:
    """Anonymised (an erasure, say) within the retention: nothing left for the provider."""
    ended, _ = refs
    web.clock.now = ENDED + dt.timedelta(days=2)
    with web.session() as s:
        case = cases.get_case(s, ended)
        case.anonymised_at = ENDED + dt.timedelta(days=1)
        s.add(case)
        s.commit()
    assert _api(web).get(f"/api/v1/cases/{ended}").status_code == 404
    assert web.browser("provider_a").get(f"/portal/cases/{ended}").status_code == 404
    assert ended not in _portal(web) and ended not in _api_refs(web)


def test_the_ias_still_lists_the_ended_case(web: Web, refs: tuple[str, str]) -> None:
    ended, _ = refs
    web.clock.now = ENDED + dt.timedelta(days=400)
    page = web.browser("adviser").get("/", params={"q": ended})
    assert page.status_code == 200
    assert ended in page.text


def test_the_providers_notices_of_an_ended_case_leave_with_it(
    web: Web, refs: tuple[str, str]
) -> None:
    ended, _ = refs
    web.clock.now = ENDED + dt.timedelta(days=90)
    listed = _api(web).get("/api/v1/notices", params={"case": ended, "limit": 100})
    assert listed.status_code == 200, listed.text
    assert listed.json()["items"], "Solution Talk was sent the allocation notice"
    web.clock.now = ENDED + dt.timedelta(days=90, hours=1)
    listed = _api(web).get("/api/v1/notices", params={"limit": 100})
    assert listed.status_code == 200, listed.text
    assert ended not in {n["reference"] for n in listed.json()["items"]}
    # Asked for by its reference, the case is not found at all (as past the retention).
    by_case = _api(web).get("/api/v1/notices", params={"case": ended, "limit": 100})
    assert by_case.status_code == 404, by_case.text


def test_past_the_retention_its_documents_are_not_found_by_number_either(web: Web) -> None:
    """The meeting invitation the provider was sent, fetched by its number: served
    within the retention, then the same 404 as no such document, in the API and portal."""
    case = make_case(web, provider="solution-talk", mediating=True)
    with web.session() as s:
        cases.advance(
            s, case.reference, "schedule_meeting", now=at("2026-11-13"), actor=ADVISER,
            settings=web.settings, data={"meeting_on": "2026-11-18", "meeting_time": "10:00"},
        )  # fmt: skip
        cases.advance(
            s, case.reference, "record_meeting", now=at("2026-11-18", "15:00"),
            actor=ADVISER, settings=web.settings, data=HELD,
        )  # fmt: skip
        cases.advance(
            s, case.reference, "withdraw", now=ENDED, actor=ADVISER, settings=web.settings,
            data={"reason": "The school agreed the support"},
        )  # fmt: skip
        [first, *_] = [
            d.id
            for d in cases.list_case_documents(s, case.reference, ADVISER)
            if d.kind == "meeting_invitation"
        ]
    api = _api(web)
    portal = f"/portal/cases/{case.reference}/documents/{first}"
    web.clock.now = ENDED + dt.timedelta(days=90)
    assert api.get(f"/api/v1/documents/{first}").status_code == 200
    assert web.browser("provider_a").get(portal).status_code == 200
    web.clock.now = ENDED + dt.timedelta(days=90, hours=1)
    assert api.get(f"/api/v1/documents/{first}").status_code == 404
    assert web.browser("provider_a").get(portal).status_code == 404
