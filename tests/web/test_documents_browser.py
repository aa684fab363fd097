"""Documents in a real browser at phone width (390 px): the case page's documents and a
download, the portal's, and the public /verify page, each checked with axe-core and for
horizontal scrolling."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select
from sqlmodel import col

from casework import cases
from casework.db import session_scope
from casework.models import Document
from tests.conftest import ADVISER, at
from tests.factories import advance, allocate_to, create_case
from tests.web.test_browser import Live, People, Person, browser, live, people

if TYPE_CHECKING:
    from playwright.sync_api import Page

__all__ = ["browser", "live", "people"]  # fixtures, used by name below
pytestmark = pytest.mark.slow
PHONE = {"width": 390, "height": 844}


def certified(live: Live) -> tuple[str, Document]:
    """Allocated to Solution Talk (accepted); the meeting held; the mediator's certificate."""
    with session_scope(live.engine) as s:
        case = create_case(s, live.settings, name="Robin Paper", child_name="Kit Paper")
        advance(s, live.settings, case, "advise", now=at("2026-11-10"))
        allocate_to(
            s, case.reference, "solution-talk", now=at("2026-11-10", "11:00"),
            actor=ADVISER, settings=live.settings,
        )  # fmt: skip
        provider = cases.find_provider(s, "solution-talk")
        mediator = cases.Actor(
            id="user:pat@solution-talk.example.org", role="provider", channel="portal",
            provider_id=provider.id,
        )  # fmt: skip
        cases.respond_to_allocation(
            s, case.reference, accept=True, now=at("2026-11-10", "12:00"), actor=mediator,
            settings=live.settings,
        )  # fmt: skip
        advance(
            s, live.settings, case, "choose_mediation", now=at("2026-11-10", "13:00"),
            la_told_on="2026-11-10",
        )  # fmt: skip
        advance(
            s, live.settings, case, "record_meeting", now=at("2026-11-12", "15:00"),
            actor=mediator, meeting_held_on="2026-11-12", outcome="none",
        )  # fmt: skip
        advance(
            s, live.settings, case, "issue_certificate", now=at("2026-11-12", "16:00"),
            actor=mediator,
        )  # fmt: skip
        doc = s.execute(select(Document).where(col(Document.case_id) == case.id)).scalar_one()
        s.expunge(doc)
        return case.reference, doc


def at_phone_width(person: Person, page: Page, name: str) -> None:
    page.set_viewport_size(PHONE)
    person.check(page, name)
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the {name} page scrolls sideways at 390 px ({width} px)"


def test_documents_download_and_verify_at_phone_width(
    live: Live, people: People, tmp_path: Path
) -> None:
    reference, doc = certified(live)
    adviser = people["adviser"]
    page = adviser.sign_in()
    page.goto(f"/cases/{reference}#documents")
    at_phone_width(adviser, page, "case with documents")
    link = page.locator(f'a[href="/cases/{reference}/documents/{doc.id}"]')
    with page.expect_download() as download:
        link.click()
    saved = tmp_path / "download.pdf"
    download.value.save_as(saved)
    assert download.value.suggested_filename == doc.file_name
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == doc.sha256

    mediator = people["provider_a"]
    portal = mediator.sign_in()
    portal.goto(f"/portal/cases/{reference}#documents")
    assert portal.locator(f'a[href="/portal/cases/{reference}/documents/{doc.id}"]').count() == 1
    at_phone_width(mediator, portal, "portal case with documents")

    visitor = Person(live, people.browser, "adviser")  # a fresh context: not signed in
    try:
        check = visitor.page
        check.set_viewport_size(PHONE)
        check.goto("/verify")
        at_phone_width(visitor, check, "verify")
        with check.expect_navigation():
            check.get_by_role("button", name="Check certificate").click()
        assert check.title().startswith("Error: ")
        at_phone_width(visitor, check, "verify with errors")
        check.get_by_label("Certificate number").fill(doc.certificate_number or "")
        check.get_by_label("Verification code").fill(doc.verification_code or "")
        with check.expect_navigation():
            check.get_by_role("button", name="Check certificate").click()
        assert "This certificate is genuine" in check.locator("main").inner_text()
        assert "Robin Paper" not in check.content() and reference not in check.content()
        at_phone_width(visitor, check, "verify genuine")
    finally:
        visitor.close()
