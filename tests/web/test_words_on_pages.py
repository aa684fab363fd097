"""No code reaches a page: the dashboard, the manager's page, the case page, the portal, the
intake form and the reports.

A case is walked far past its clocks, so the scheduler raises real reminders and
escalations and misses real deadlines; then a notice of every template is added in
every status, each skipped or failed one with each reason code, each with every
kind of delivery receipt. Every page is read as text (what a person sees) and must
hold no template name, no snake_case field or enum value, no state, status or
reason code, no actor id and no ISO timestamp. The page titles are unique, and a
form sent with errors puts "Error: " first in the title.
"""

from __future__ import annotations

import datetime as dt
import html as html_lib
import itertools
import re

import pytest

from casework import scheduler
from casework.cases import words
from casework.deadlines import DeadlineKind
from casework.models import DeliveryEvent, Notice, NoticeStatus
from casework.notices import NoticeReason, reason_text
from casework.states import CaseState
from tests.conftest import at
from tests.web.conftest import Web, make_case

LATER = at("2027-01-20", "10:00")
PERIOD = "from=2026-01-01&to=2027-01-31"
ISO_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T")
SNAKE_CASE = re.compile(r"\b[a-z0-9]+(?:_[a-z0-9]+)+\b")
# Codes that are one lowercase word and never English in the words the pages use.
ONE_WORD_CODES = ("queued", "skipped", "sms", "stale", "cli", "mediating")
ACTOR_IDS = re.compile(r"\b(?:user|system|token|cli):\S")


def _visible_text(page: str) -> str:
    page = re.sub(r"(?s)<(script|style)\b.*?</\1>", " ", page)
    return " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def _spaced_templates() -> set[str]:
    """Template names with spaces for underscores, except those that are plain English
    the word tables use themselves ("options after advice")."""
    english = " ".join(
        v.lower()
        for table in (words.TEMPLATE_WORDS, words.DEADLINE_WORDS, words.NOTICE_REASON_WORDS)
        for v in table.values()
    )
    spaced = {t.replace("_", " ") for t in words.TEMPLATE_WORDS}
    return {t for t in spaced if t not in english}


def _title(page: str) -> str:
    found = re.search(r"<title>(.*?)</title>", page, re.S)
    assert found, "a page without a title"
    return html_lib.unescape(" ".join(found.group(1).split()))


def _codes() -> set[str]:
    """The codes that are not English words ("sent" and "allocated" are words too)."""
    every = (
        set(words.TEMPLATE_WORDS)
        | {k.value for k in DeadlineKind}
        | {s.value for s in CaseState}
        | {r.value for r in NoticeReason}
        | {s.value for s in NoticeStatus}
    )
    return {c for c in every if "_" in c or c in ONE_WORD_CODES}


@pytest.fixture
def pages(web: Web) -> dict[str, str]:
    seeded = make_case(web, provider="solution-talk", mediating=True, child_name="Ash")
    waiting = make_case(web)
    # Walk time on: reminders go out, clocks are missed, escalations are raised.
    for day in ("2026-12-09", "2026-12-15", "2026-12-21", "2027-01-11", "2027-01-19"):
        scheduler.run_once(web.engine, web.settings, at(day, "09:01"))
    statuses = [s.value for s in NoticeStatus]
    reasons = itertools.cycle(list(NoticeReason))
    receipts = itertools.cycle([*words.DELIVERY_STATUS_WORDS, "something-new"])
    with web.session() as s:
        for n, (template, status) in enumerate(
            itertools.product(sorted(words.TEMPLATE_WORDS), statuses)
        ):
            recipient = (
                "manager"
                if template.startswith("escalation")
                else ("provider" if template.startswith("provider") else "family")
            )
            moment = LATER - dt.timedelta(hours=n + 1)
            notice = Notice(
                idempotency_key=f"words:{n}",
                case_id=seeded.id,
                template=template,
                recipient_role=recipient,
                channel="sms" if n % 2 else "email",
                to_address="+447911123456" if n % 2 else "someone@example.org",
                context={},
                subject="",
                body=f"Body of a {status} notice." if status in ("sent", "delivered") else "",
                status=status,
                last_error=(
                    reason_text(next(reasons), "detail") if status in ("skipped", "failed") else ""
                ),
                not_before=moment,
                created_at=moment,
                sent_at=moment if status in ("sent", "delivered") else None,
                delivered_at=moment if status == "delivered" else None,
            )
            s.add(notice)
            s.flush()
            for k in range(2):
                s.add(
                    DeliveryEvent(
                        notice_id=notice.id,  # type: ignore[arg-type]
                        at=moment + dt.timedelta(minutes=k),
                        source="twilio",
                        status=next(receipts),
                        detail="detail",
                    )
                )
        s.commit()
    web.clock.now = LATER
    adviser, manager, provider = (web.browser(w) for w in ("adviser", "manager", "provider_a"))
    out = {
        "dashboard": adviser.get("/"),
        "dashboard, every state": adviser.get("/", params={"state": "all"}),
        "manager": manager.get("/manager"),
        "case page": adviser.get(f"/cases/{seeded.reference}"),
        "case page, nothing allocated": adviser.get(f"/cases/{waiting.reference}"),
        "portal": provider.get("/portal"),
        "portal case page": provider.get(f"/portal/cases/{seeded.reference}"),
        "intake": adviser.get("/cases/new"),
        "reports": manager.get(f"/reports?{PERIOD}"),
        "timeliness report": manager.get(f"/reports/timeliness?{PERIOD}"),
        "flow report": manager.get(f"/reports/flow?{PERIOD}"),
        "SEN2 report": manager.get("/reports/sen2?year=2026"),
    }
    for name, answer in out.items():
        assert answer.status_code == 200, (name, answer.status_code)
    return {name: answer.text for name, answer in out.items()}


def test_the_seeded_case_reaches_every_page(pages: dict[str, str]) -> None:
    text = _visible_text(pages["manager"])
    assert "Alert: a deadline was missed" in text  # a real escalation, in words
    assert "Overdue" in _visible_text(pages["case page"])
    case = _visible_text(pages["case page"])
    for reason in NoticeReason:
        assert words.NOTICE_REASON_WORDS[reason].capitalize() in case, reason


@pytest.mark.parametrize(
    "name",
    [
        "dashboard",
        "dashboard, every state",
        "manager",
        "case page",
        "case page, nothing allocated",
        "portal",
        "portal case page",
        "intake",
        "reports",
        "timeliness report",
        "flow report",
        "SEN2 report",
    ],
)
def test_no_code_reaches_the_page(pages: dict[str, str], name: str) -> None:
    text = _visible_text(pages[name])
    found = sorted(
        {c for c in _codes() if re.search(rf"(?<![\w-]){re.escape(c)}(?![\w-])", text)}
        | set(SNAKE_CASE.findall(text))
        | {w for w in ONE_WORD_CODES if re.search(rf"\b{w}\b", text)}
        # A template name with its underscores made spaces ("escalation missed").
        | {c for c in _spaced_templates() if re.search(rf"\b{re.escape(c)}\b", text)}
    )
    assert found == [], f"{name} shows codes: {found}"
    assert not ISO_TIMESTAMP.search(text), ISO_TIMESTAMP.search(text)
    # A status tag holds words ("Waiting to send"), never the stored value ("queued").
    tags = re.findall(r'class="govuk-tag[^"]*">([^<]*)<', pages[name])
    assert [t for t in tags if not t.strip()[:1].isupper()] == []
    assert not ACTOR_IDS.search(text), ACTOR_IDS.search(text)


def test_every_page_has_its_own_title(pages: dict[str, str]) -> None:
    titles = {
        name: _title(page)
        for name, page in pages.items()
        if name not in ("dashboard, every state", "case page, nothing allocated")
    }
    assert len(set(titles.values())) == len(titles), titles
    assert not any(t.startswith("Error") for t in titles.values())


def test_a_form_with_errors_says_error_first_in_the_title(web: Web) -> None:
    case = make_case(web)
    browser = web.browser("adviser")
    for url, form in (
        (f"/cases/{case.reference}/messages", {"channel": "", "text": ""}),
        (f"/cases/{case.reference}/notes", {"text": ""}),
        ("/cases/new", {"kind": ""}),
    ):
        refused = browser.post(url, form)
        assert refused.status_code == 422, (url, refused.status_code)
        assert _title(refused.text).startswith("Error: "), url
        assert "govuk-error-summary" in refused.text
