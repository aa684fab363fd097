"""Documents through the web doors: the case page and the portal list and serve them (every
download audited), the mediator issues and corrects its certificate from the portal, and
the public /verify page says genuine or not and nothing else."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
from typing import Any

from fastapi.testclient import TestClient
from pypdf import PdfReader
from sqlalchemy import select
from sqlmodel import col

from casework import auth
from casework.cases.certificates import show_code
from casework.models import Document, User
from tests.web.conftest import Web, events_of, make_case, reload


def _post_event(web: Web, who: str, url: str, data: dict[str, str]) -> Any:
    reference = url.split("/cases/")[1].split("/")[0]
    version = str(reload(web, reference).version)
    return web.browser(who).post(url, {"version": version, **data})


def mediator_certificate(web: Web) -> tuple[str, Document]:
    """Solution Talk records the meeting and issues its certificate from the portal."""
    reference = make_case(web, provider="solution-talk", accepted=True, mediating=True).reference
    web.clock.now = web.clock.now.replace(hour=15)
    base = f"/portal/cases/{reference}/events"
    assert (
        _post_event(
            web,
            "provider_a",
            f"{base}/record_meeting",
            {
                "meeting_held_on-day": "12",
                "meeting_held_on-month": "11",
                "meeting_held_on-year": "2026",
                "outcome": "none",
            },
        ).status_code
        == 303
    )
    assert _post_event(web, "provider_a", f"{base}/issue_certificate", {}).status_code == 303
    return reference, documents(web, reference)[-1]


def adviser_certificate(web: Web) -> tuple[str, Document]:
    """Allocated to Solution Talk; the family declines; the adviser issues the certificate."""
    reference = make_case(web, provider="solution-talk", accepted=True, mediating=True).reference
    base = f"/cases/{reference}/events"
    assert _post_event(web, "adviser", f"{base}/decline", {}).status_code == 303
    assert _post_event(web, "adviser", f"{base}/issue_certificate", {}).status_code == 303
    return reference, documents(web, reference)[-1]


def adviser_certificate_while_allocated(web: Web) -> tuple[str, Document]:
    """Solution Talk still has the case; the LA cannot arrange the meeting in time, so the
    adviser issues the certificate (a kind the provider does not read)."""
    reference = make_case(web, provider="solution-talk", accepted=True, mediating=True).reference
    base = f"/cases/{reference}/events"
    assert _post_event(web, "adviser", f"{base}/report_not_arranged", {}).status_code == 303
    assert _post_event(web, "adviser", f"{base}/issue_certificate", {}).status_code == 303
    return reference, documents(web, reference)[-1]


def documents(web: Web, reference: str) -> list[Document]:
    with web.session() as s:
        case = reload(web, reference)
        rows = list(
            s.execute(
                select(Document).where(col(Document.case_id) == case.id).order_by(col(Document.id))
            ).scalars()
        )
        for row in rows:
            s.expunge(row)
        return rows


def downloads(web: Web, reference: str) -> list[tuple[str, str, Any]]:
    return [
        (e.actor, e.channel, e.data.get("document_id"))
        for e in events_of(web, reference)
        if e.event == "download_document"
    ]


def test_the_mediator_issues_from_the_portal_and_downloads_its_certificate(web: Web) -> None:
    reference, doc = mediator_certificate(web)
    assert doc.kind == "certificate_mediation_held"
    assert doc.created_by == "user:pat@solution-talk.example.org"
    portal = web.browser("provider_a")
    page = portal.get(f"/portal/cases/{reference}").text
    assert "Mediation certificate: mediation took place" in page
    assert f"/portal/cases/{reference}/documents/{doc.id}" in page
    assert "pat@solution-talk" not in page.split('id="documents"')[1].split("</table>")[0]
    got = portal.get(f"/portal/cases/{reference}/documents/{doc.id}")
    assert got.status_code == 200
    assert got.headers["content-type"] == "application/pdf"
    assert got.headers["content-disposition"] == f'attachment; filename="{doc.file_name}"'
    assert hashlib.sha256(got.content).hexdigest() == doc.sha256
    text = " ".join(PdfReader(io.BytesIO(got.content)).pages[0].extract_text().split())
    assert "Issued by provider_a, mediator, Solution Talk" in text  # the user's name
    assert downloads(web, reference) == [("user:pat@solution-talk.example.org", "portal", doc.id)]


def test_the_case_page_lists_documents_and_every_download_is_audited(web: Web) -> None:
    reference, doc = adviser_certificate(web)
    adviser = web.browser("adviser")
    page = adviser.get(f"/cases/{reference}").text
    assert 'id="documents"' in page
    assert "Mediation certificate: the family decided not to pursue mediation" in page
    assert f"Number {doc.certificate_number}" in page
    assert "certificate_declined" not in page
    for _ in range(2):
        got = adviser.get(f"/cases/{reference}/documents/{doc.id}")
        assert got.status_code == 200 and got.content.startswith(b"%PDF")
    assert downloads(web, reference) == [("user:alice.adviser@ias.example.org", "web", doc.id)] * 2
    # A document of another case, through this case's address: not found.
    _other, other_doc = adviser_certificate(web)
    assert adviser.get(f"/cases/{reference}/documents/{other_doc.id}").status_code == 404


def test_providers_get_404_for_adviser_kinds_and_other_providers_documents(web: Web) -> None:
    reference, doc = adviser_certificate_while_allocated(web)
    own = web.browser("provider_a")
    shown = own.get(f"/portal/cases/{reference}")
    assert shown.status_code == 200
    assert f"/documents/{doc.id}" not in shown.text
    assert own.get(f"/portal/cases/{reference}/documents/{doc.id}").status_code == 404
    mediated, mediator_doc = mediator_certificate(web)
    other = web.browser("provider_b")
    assert other.get(f"/portal/cases/{mediated}/documents/{mediator_doc.id}").status_code == 404
    assert other.get(f"/cases/{mediated}/documents/{mediator_doc.id}").status_code == 404
    assert downloads(web, reference) == [] and downloads(web, mediated) == []


def test_the_adviser_corrects_a_certificate_and_verify_says_which_is_current(web: Web) -> None:
    reference, first = adviser_certificate(web)
    adviser = web.browser("adviser")
    page = adviser.get(f"/cases/{reference}").text
    action = f"/cases/{reference}/certificates/{first.certificate_number}/reissue"
    assert action in page
    refused = adviser.post(action, {"reason": ""})
    assert refused.status_code == 422
    assert "Say what was corrected" in refused.text
    assert f'href="#reissue-{first.certificate_number}-reason"' in refused.text
    done = adviser.post(action, {"reason": "wrong decision type"})
    assert done.status_code == 303 and "done=reissued" in done.headers["location"]
    old, new = documents(web, reference)[-2:]
    assert old.superseded_by == new.id and new.version == 2
    assert "Replaced by a correction" in adviser.get(f"/cases/{reference}").text

    public = web.browser()
    form = public.get("/verify")
    assert form.status_code == 200 and "Check a mediation certificate" in form.text
    number = first.certificate_number or ""
    current = public.post("/verify", {"number": number, "code": new.verification_code}, csrf=None)
    assert current.status_code == 200
    assert "This certificate is genuine" in current.text
    assert "Yes, this is the current version" in current.text
    assert "The family decided not to pursue mediation" in current.text
    for private in ("Jo Family", reference, "Manchester City Council", "alice"):
        assert private not in current.text
    stale = public.post(
        "/verify", {"number": number.lower(), "code": show_code(first.verification_code or "")},
        csrf=None,
    )  # fmt: skip
    assert "This certificate is genuine" in stale.text
    assert "No, it was corrected" in stale.text
    wrong = public.post("/verify", {"number": number, "code": "AAAA-AAAA"}, csrf=None)
    assert "No certificate matches" in wrong.text and "genuine" not in wrong.text
    empty = public.post("/verify", {"number": "", "code": ""}, csrf=None)
    assert empty.status_code == 400
    assert "<title>Error: " in empty.text and "Enter the certificate number" in empty.text


def test_verify_slows_guessing_per_address(web: Web) -> None:
    public = web.browser()
    answers = [
        public.post("/verify", {"number": "MC-2026-000001", "code": f"AAAA-AA{i:02d}"}, csrf=None)
        for i in range(21)
    ]
    assert {a.status_code for a in answers[:20]} == {200}
    assert answers[20].status_code == 429
    assert re.search(r"Try again in \d+ minutes", answers[20].text)
    web.clock.now += dt.timedelta(minutes=11)
    later = public.post("/verify", {"number": "MC-2026-000001", "code": "AAAA-AAAA"}, csrf=None)
    assert later.status_code == 200


def _token(web: Web, who: str) -> dict[str, str]:
    with web.session() as s:
        user = s.get(User, web.users[who].id)
        assert user is not None
        token = auth.create_api_token(s, user, name="tests", now=web.clock.now)
    return {"Authorization": f"Bearer {token}"}


def test_the_api_lists_and_serves_documents_audited_and_scoped(web: Web) -> None:
    reference, doc = adviser_certificate_while_allocated(web)
    client = TestClient(web.app)
    adviser = _token(web, "adviser")
    listed = client.get(f"/api/v1/cases/{reference}/documents", headers=adviser)
    assert listed.status_code == 200
    [item] = listed.json()["items"]
    assert (item["id"], item["sha256"], item["current"]) == (doc.id, doc.sha256, True)
    assert "verification_code" not in item and "content" not in item
    got = client.get(f"/api/v1/documents/{doc.id}", headers=adviser)
    assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == doc.sha256
    assert downloads(web, reference) == [("user:alice.adviser@ias.example.org", "api", doc.id)]
    for who in ("provider_a", "provider_b"):  # an adviser's certificate; Collis's not its case
        headers = _token(web, who)
        assert client.get(f"/api/v1/documents/{doc.id}", headers=headers).status_code == 404
    own = client.get(f"/api/v1/cases/{reference}/documents", headers=_token(web, "provider_a"))
    assert own.status_code == 200 and own.json()["items"] == []
    other = client.get(f"/api/v1/cases/{reference}/documents", headers=_token(web, "provider_b"))
    assert other.status_code == 404
    assert len(downloads(web, reference)) == 1


def test_the_portal_corrects_only_the_mediators_certificate(web: Web) -> None:
    reference, doc = adviser_certificate_while_allocated(web)
    portal = web.browser("provider_a")
    assert "/reissue" not in portal.get(f"/portal/cases/{reference}").text
    refused = portal.post(
        f"/portal/cases/{reference}/certificates/{doc.certificate_number}/reissue",
        {"reason": "typo"},
    )
    assert refused.status_code == 403
    assert "a mediator reissues only the certificate after a meeting" in refused.text
    assert len(documents(web, reference)) == 1

    mediated, own = mediator_certificate(web)  # the clock moves on: a new session
    portal = web.browser("provider_a")
    shown = portal.get(f"/portal/cases/{mediated}")
    assert shown.status_code == 200, shown.headers
    page = shown.text
    action = f"/portal/cases/{mediated}/certificates/{own.certificate_number}/reissue"
    assert action in page
    done = portal.post(action, {"reason": "meeting date corrected"})
    assert done.status_code == 303 and "done=reissued" in done.headers["location"]
    old, new = documents(web, mediated)
    assert old.superseded_by == new.id and new.created_by == "user:pat@solution-talk.example.org"
    trail = [e for e in events_of(web, mediated) if e.event == "reissue_certificate"]
    assert [e.channel for e in trail] == ["portal"]
