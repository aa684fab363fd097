"""The meeting invitation downloads from the case page and from the provider's portal."""

from __future__ import annotations

from icalendar import Calendar

from casework import cases
from casework.cases.documents import documents_of
from tests.conftest import at
from tests.web.conftest import Web, make_case, provider_actor


def test_the_invitation_downloads_from_the_case_page_and_the_portal(web: Web) -> None:
    case = make_case(web, provider="solution-talk", mediating=True)
    with web.session() as s:
        cases.advance(
            s,
            case.reference,
            "schedule_meeting",
            now=at("2026-11-12", "09:00"),
            actor=provider_actor(web, "provider_a"),
            settings=web.settings,
            data={
                "meeting_on": "2026-12-09",
                "meeting_time": "10:00",
                "meeting_place": "https://meet.example.org/abc",
            },
        )
        [doc] = [
            d
            for d in documents_of(
                s, cases.get_case(s, case.reference), provider_actor(web, "provider_a")
            )
            if d.kind == "meeting_invitation"
        ]

    adviser = web.browser("adviser")
    page = adviser.get(f"/cases/{case.reference}").text
    assert "Meeting invitation (calendar file)" in page
    assert f"/cases/{case.reference}/documents/{doc.id}" in page
    got = adviser.get(f"/cases/{case.reference}/documents/{doc.id}")
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/calendar")
    assert str(Calendar.from_ical(got.content).walk("VEVENT")[0]["LOCATION"]) == (
        "https://meet.example.org/abc"
    )

    portal = web.browser("provider_a")
    page = portal.get(f"/portal/cases/{case.reference}").text
    assert f"/portal/cases/{case.reference}/documents/{doc.id}" in page
    got = portal.get(f"/portal/cases/{case.reference}/documents/{doc.id}")
    assert got.status_code == 200
    assert str(Calendar.from_ical(got.content)["METHOD"]) == "REQUEST"
    # Another provider sees nothing of it.
    other = web.browser("provider_b").get(f"/portal/cases/{case.reference}/documents/{doc.id}")
    assert other.status_code == 404
