"""Notes and calls from the adviser's case page; the shared ones on the provider's portal."""

from __future__ import annotations

from casework import cases
from tests.conftest import at
from tests.web.conftest import Web, events_of, make_case

SHARED = "The family would like a morning meeting"
PRIVATE = "Father disclosed a health condition in confidence"


def test_a_note_and_a_call_are_written_from_the_case_page(web: Web) -> None:
    case = make_case(web, provider="solution-talk", accepted=True)
    browser = web.browser("adviser")
    page = browser.get(f"/cases/{case.reference}").text
    assert "Notes and calls" in page and "No notes or calls yet." in page
    saved = browser.post(f"/cases/{case.reference}/notes", {"text": PRIVATE, "visibility": "ias"})
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"].endswith("?done=note#notes")
    logged = browser.post(
        f"/cases/{case.reference}/calls",
        {
            "call_on-day": "11",
            "call_on-month": "11",
            "call_on-year": "2026",
            "direction": "in",
            "who": "mother",
            "summary": SHARED,
            "visibility": "shared",
        },
    )
    assert logged.status_code == 303, logged.text
    html = browser.get(f"/cases/{case.reference}?done=call").text
    assert "Call logged." in html
    assert "Call from mother, Wednesday 11 November 2026" in html
    assert PRIVATE in html and SHARED in html
    assert "IAS only" in html and "Shared with the provider" in html
    # Both are in the timeline as audited steps, in words.
    assert "Note written" in html and "Call logged" in html
    steps = [e.event for e in events_of(web, case.reference) if e.event != "viewed"]
    assert steps[-2:] == ["add_note", "log_call"]


def test_a_refused_call_keeps_what_was_typed_and_names_the_field(web: Web) -> None:
    case = make_case(web)
    browser = web.browser("adviser")
    refused = browser.post(
        f"/cases/{case.reference}/calls",
        {
            "call_on-day": "13",
            "call_on-month": "11",
            "call_on-year": "2026",
            "direction": "out",
            "who": "LA officer",
            "summary": "Chased the decision letter",
            "visibility": "ias",
        },
    )
    assert refused.status_code == 422
    assert "The date of the call (Friday 13 November 2026) is after today" in refused.text
    assert 'href="#call-call_on"' in refused.text
    assert "Chased the decision letter</textarea>" in refused.text
    assert 'value="LA officer"' in refused.text
    blank = browser.post(f"/cases/{case.reference}/notes", {"text": " ", "visibility": "ias"})
    assert blank.status_code == 422 and "The note: this is needed." in blank.text
    assert 'href="#note-text"' in blank.text
    with web.session() as s:
        assert cases.notes_of(s, cases.get_case(s, case.reference)) == []


def test_the_portal_shows_shared_notes_and_never_adviser_only_ones(web: Web) -> None:
    case = make_case(web, provider="solution-talk", accepted=True)
    with web.session() as s:
        adviser = next(u for u in web.users.values() if u.role == "adviser")
        actor = cases.Actor(id=f"user:{adviser.email}", role="adviser", channel="web")
        cases.add_note(s, case.reference, text=PRIVATE, now=at("2026-11-11"), actor=actor)
        cases.add_note(
            s, case.reference, text=SHARED, shared=True, now=at("2026-11-11"), actor=actor
        )
    html = web.browser("provider_a").get(f"/portal/cases/{case.reference}").text
    assert "Notes from the IAS adviser" in html
    assert SHARED in html and "by the IAS service" in html
    assert PRIVATE not in html
    assert adviser.email not in html


def test_provider_staff_cannot_post_notes_on_the_adviser_page(web: Web) -> None:
    case = make_case(web, provider="solution-talk", accepted=True)
    refused = web.browser("provider_a").post(
        f"/cases/{case.reference}/notes", {"text": "Hello", "visibility": "shared"}
    )
    assert refused.status_code == 404
    with web.session() as s:
        assert cases.notes_of(s, cases.get_case(s, case.reference)) == []


def test_the_api_gives_the_adviser_every_note_and_the_provider_the_shared_ones(
    web: Web,
) -> None:
    from fastapi.testclient import TestClient

    from casework import auth
    from casework.models import User

    case = make_case(web, provider="solution-talk", accepted=True)
    with web.session() as s:
        actor = cases.Actor(id="user:alice.adviser@ias.example.org", role="adviser")
        cases.add_note(s, case.reference, text=PRIVATE, now=at("2026-11-11"), actor=actor)
        cases.add_note(
            s, case.reference, text=SHARED, shared=True, now=at("2026-11-11"), actor=actor
        )
        tokens = {}
        for who in ("adviser", "provider_a"):
            user = s.get(User, web.users[who].id)
            assert user is not None
            tokens[who] = auth.create_api_token(s, user, name="notes", now=at("2026-11-11"))
    client = TestClient(web.app)
    seen = {
        who: client.get(
            f"/api/v1/cases/{case.reference}", headers={"Authorization": f"Bearer {token}"}
        ).json()["notes"]
        for who, token in tokens.items()
    }
    assert [(n["text"], n["shared"]) for n in seen["adviser"]] == [
        (SHARED, True),
        (PRIVATE, False),
    ]
    assert [(n["text"], n["recorded_by"]) for n in seen["provider_a"]] == [
        (SHARED, "the IAS service")
    ]


def test_the_family_contact_is_corrected_from_the_case_page(web: Web) -> None:
    case = make_case(web)
    browser = web.browser("adviser")
    page = browser.get(f"/cases/{case.reference}").text
    assert "Correct the family&#39;s contact" in page or "Correct the family's contact" in page
    form = {
        "version": str(case.version),
        "name": "Jo Smith",
        "phone": "0161 12",
        "email": "jo.family@example.org",
        "preferred_channels": ["sms", "email"],
        "sms_consent": "yes",
        "reason": "Married name; new number",
    }
    refused = browser.post(f"/cases/{case.reference}/contact", form)
    assert refused.status_code == 422
    assert "Telephone number: &#39;0161 12&#39; is not a UK phone number" in refused.text
    assert 'href="#contact-phone"' in refused.text
    assert 'value="Jo Smith"' in refused.text  # what was typed is kept
    saved = browser.post(f"/cases/{case.reference}/contact", form | {"phone": "07911 123456"})
    assert saved.status_code == 303, saved.text
    html = browser.get(f"/cases/{case.reference}?done=contact").text
    assert "Family contact corrected." in html
    assert "Jo Smith" in html and "07911 123456" in html
    assert "Name before" in html and "Married name; new number" in html
    with web.session() as s:
        family = cases.family_of(s, cases.get_case(s, case.reference))
        assert family is not None
        assert (family.name, family.phone) == ("Jo Smith", "+447911123456")
    no_reason = browser.post(
        f"/cases/{case.reference}/contact",
        form | {"phone": "07911 123456", "name": "Jo Jones", "reason": "", "version": ""},
    )
    assert no_reason.status_code == 422
    assert "Why the contact is being changed: this is needed." in no_reason.text
