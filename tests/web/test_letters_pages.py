"""The "Letters to post" page over HTTP: list, print all, mark posted, refusals in words."""

from __future__ import annotations

import io
import re

from pypdf import PdfReader
from sqlalchemy import select
from sqlmodel import col

from casework.models import Case, CaseEvent, Notice
from casework.notify.dispatch import dispatch
from tests.conftest import at
from tests.factories import create_case
from tests.web.conftest import Web

ADDRESS = {
    "address_line_1": "12 Acacia Avenue",
    "address_town": "Manchester",
    "address_postcode": "M19 2AB",
}


def letters(web: Web, *names: str) -> list[str]:
    references = []
    with web.session() as s:
        for name in names:
            case = create_case(
                s,
                web.settings,
                now=at("2026-11-12", "09:00"),
                name=name,
                email="",
                preferred_channels="post",
                **ADDRESS,
            )
            references.append(case.reference)
    assert dispatch(web.engine, at("2026-11-12", "09:00"), web.settings).printed == len(names)
    return references


def numbers(web: Web) -> list[int]:
    with web.session() as s:
        return list(
            s.execute(
                select(Notice.id).where(col(Notice.status) == "to_post").order_by(col(Notice.id))
            ).scalars()
        )


def test_staff_see_print_and_mark_letters_posted(web: Web) -> None:
    first, second = letters(web, "Ann Parent", "Bo Carer")
    browser = web.browser("adviser")
    page = browser.get("/letters")
    assert page.status_code == 200
    html = page.text
    assert "<title>Letters to post" in html
    assert "Ann Parent" in html and "Bo Carer" in html and first in html
    assert "Thursday 12 November 2026" in html
    assert 'href="/letters"' in html  # in the navigation
    assert not re.search(r"\d{4}-\d\d-\d\d|to_post", html)

    printed = browser.post("/letters/print")
    assert printed.status_code == 200
    assert printed.headers["content-type"] == "application/pdf"
    assert "letters-to-post.pdf" in printed.headers["content-disposition"]
    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(printed.content)).pages)
    assert "Ann Parent" in text and "Bo Carer" in text

    one, two = numbers(web)
    done = browser.post("/letters/posted", {"letters": [str(one)]})
    assert done.status_code == 303 and done.headers["location"] == "/letters?done=posted"
    after = browser.get("/letters?done=posted").text
    assert "Letters recorded as posted" in after
    assert "Ann Parent" not in after and "Bo Carer" in after
    with web.session() as s:
        [row] = s.execute(
            select(CaseEvent).where(col(CaseEvent.event) == "letter_posted")
        ).scalars()
        assert row.actor == "user:alice.adviser@ias.example.org"
    case_page = browser.get(f"/cases/{first}").text
    assert "Letter posted" in case_page and "Thursday 12 November 2026" in case_page
    assert second and two


def test_refusals_are_shown_with_an_error_summary(web: Web) -> None:
    letters(web, "Ann Parent")
    browser = web.browser("manager")
    nothing = browser.post("/letters/posted", {})
    assert nothing.status_code == 400
    assert "<title>Error: Letters to post" in nothing.text
    assert "govuk-error-summary" in nothing.text
    assert 'href="#letters"' in nothing.text
    [number] = numbers(web)
    future = browser.post(
        "/letters/posted",
        {
            "letters": [str(number)],
            "posted_on-day": "1",
            "posted_on-month": "1",
            "posted_on-year": "2027",
        },
    )
    assert future.status_code == 400 and "cannot be in the future" in future.text
    assert 'href="#posted_on"' in future.text


def test_provider_staff_cannot_see_letters(web: Web) -> None:
    letters(web, "Ann Parent")
    browser = web.browser("provider_a")
    page = browser.get("/letters")
    assert page.status_code == 403 and "Ann Parent" not in page.text
    assert browser.post("/letters/print").status_code == 403


def test_print_with_nothing_waiting_says_so(web: Web) -> None:
    page = web.browser("adviser").post("/letters/print")
    assert page.status_code == 409 and "no letters waiting" in page.text


def test_intake_and_the_contact_form_take_a_postal_address(web: Web) -> None:
    browser = web.browser("adviser")
    form = {
        "kind": "mediation",
        "channel": "helpline",
        "name": "Sam Parent",
        "phone": "0161 496 0000",
        "email": "",
        "preferred_channels": ["post"],
        "sms_consent": "no",
        "health_care": "no",
        "placement_only": "no",
    }
    refused = browser.post("/cases/new", form)
    assert refused.status_code == 422
    assert "Address line 1: this is needed for letters by post." in refused.text
    assert 'href="#address_postcode"' in refused.text
    with_address = form | {
        "address_line_1": "12 Acacia Avenue",
        "address_town": "Manchester",
        "address_postcode": "m19 2ab",
    }
    checked = browser.post("/cases/new", with_address)  # "check your answers" first
    assert checked.status_code == 200, checked.text
    assert "Postal address" in checked.text and "12 Acacia Avenue" in checked.text
    opened = browser.post("/cases/new", with_address | {"confirmed": "yes"})
    assert opened.status_code == 303, opened.text
    reference = opened.headers["location"].split("/")[2].split("?")[0]
    page = browser.get(f"/cases/{reference}").text
    assert "12 Acacia Avenue" in page and "M19 2AB" in page
    with web.session() as s:
        [notice] = s.execute(select(Notice).where(col(Notice.recipient_role) == "family")).scalars()
        assert notice.channel == "post"
        version = s.execute(
            select(Case.version).where(col(Case.reference) == reference)
        ).scalar_one()

    changed = browser.post(
        f"/cases/{reference}/contact",
        {
            "version": str(version),
            "name": "Sam Parent",
            "phone": "0161 496 0000",
            "email": "",
            "preferred_channels": ["post"],
            "sms_consent": "no",
            "address_line_1": "3 New Street",
            "address_line_2": "",
            "address_town": "Salford",
            "address_postcode": "M5 4WT",
            "reason": "The family moved",
        },
    )
    assert changed.status_code == 303, changed.text
    page = browser.get(f"/cases/{reference}").text
    assert "3 New Street" in page and "Address line 1 before" in page
