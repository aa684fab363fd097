"""Every door that can call off or move a meeting skips the old meeting's unsent notices.

The rule lives in the meeting's use case (casework.cases.meeting_invitations): the CLI,
the adviser's case page, the provider portal and the API each record the step, and
the confirmation still queued for the old meeting is marked skipped with its words,
while the step's own notices wait to go. Both databases.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlmodel import col
from typer.testing import CliRunner

from casework import auth, cases
from casework.cases.words import notice_reason_words
from casework.cli import app as cli_app
from casework.models import Notice, User
from tests.conftest import cli_on
from tests.web.conftest import Web, make_case, reload

NOW = dt.datetime(2026, 11, 12, 10, 0, tzinfo=dt.UTC)
ARRANGED = NOW - dt.timedelta(hours=1)
# The step's data as each door takes it: the CLI's --set pairs and the API's JSON, the
# pages' and the portal's form fields.
DATA: dict[str, dict[str, str]] = {
    "decline": {"declined_on": "2026-11-12"},
    "cancel_meeting": {"reason": "the mediator is ill"},
    "schedule_meeting": {"meeting_on": "2026-12-16", "meeting_time": "14:00"},
}
FORM: dict[str, dict[str, str]] = {
    "decline": {"declined_on-day": "12", "declined_on-month": "11", "declined_on-year": "2026"},
    "cancel_meeting": {"reason": "the mediator is ill"},
    "schedule_meeting": {
        "meeting_on-day": "16",
        "meeting_on-month": "12",
        "meeting_on-year": "2026",
        "meeting_time": "14:00",
    },
}
WORDS = {
    "decline": "not sent: the meeting was cancelled before it went out",
    "cancel_meeting": "not sent: the meeting was cancelled before it went out",
    "schedule_meeting": (
        "not sent: the meeting was rearranged before it went out (the new date was sent instead)"
    ),
}


@pytest.fixture
def cli(web: Web, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    with cli_on(database_url, monkeypatch) as runner:
        yield runner


def _with_meeting(web: Web) -> str:
    """A mediating case whose meeting's confirmation is queued, not yet sent."""
    case = make_case(web, provider="solution-talk", mediating=True)
    with web.session() as s:
        cases.advance(
            s,
            case.reference,
            "schedule_meeting",
            now=ARRANGED,
            actor=auth.actor_for(web.users["adviser"], "cli"),
            settings=web.settings,
            data={"meeting_on": "2026-12-09", "meeting_time": "10:00"},
        )
    return case.reference


def _by_cli(web: Web, cli: CliRunner, reference: str, event: str) -> None:
    pairs = [arg for k, v in DATA[event].items() for arg in ("--set", f"{k}={v}")]
    result = cli.invoke(
        cli_app, ["case", "advance", reference, event, *pairs, "--at", "2026-11-12T10:00"]
    )
    assert result.exit_code == 0, result.stderr


def _by_api(web: Web, cli: CliRunner, reference: str, event: str) -> None:
    who = "provider_a" if event != "decline" else "adviser"
    with web.session() as s:
        user = s.get(User, web.users[who].id)
        assert user is not None
        token = auth.create_api_token(s, user, name="stale", now=NOW)
    answer = TestClient(web.app).post(
        f"/api/v1/cases/{reference}/events",
        json={"event": event, "data": DATA[event]},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 200, answer.text


def _by_pages(web: Web, cli: CliRunner, reference: str, event: str) -> None:
    page = web.browser("adviser").post(
        f"/cases/{reference}/events/{event}",
        {"version": str(reload(web, reference).version), **FORM[event]},
    )
    assert page.status_code == 303, page.text


def _by_portal(web: Web, cli: CliRunner, reference: str, event: str) -> None:
    page = web.browser("provider_a").post(
        f"/portal/cases/{reference}/events/{event}",
        {"version": str(reload(web, reference).version), **FORM[event]},
    )
    assert page.status_code == 303, page.text


DOORS: dict[str, Callable[[Web, CliRunner, str, str], None]] = {
    "cli": _by_cli,
    "api": _by_api,
    "pages": _by_pages,
    "portal": _by_portal,
}
# What each door can record: a decline is the adviser's step, not the provider's.
CASES = [
    (door, event)
    for door in sorted(DOORS)
    for event in sorted(DATA)
    if not (door == "portal" and event == "decline")
]


@pytest.mark.parametrize(("door", "event"), CASES)
def test_the_old_meetings_queued_notices_are_skipped_through_every_door(
    web: Web, cli: CliRunner, door: str, event: str
) -> None:
    web.clock.now = NOW
    reference = _with_meeting(web)
    DOORS[door](web, cli, reference, event)
    with web.session() as s:
        case = cases.get_case(s, reference)
        notices = list(s.execute(select(Notice).where(col(Notice.case_id) == case.id)).scalars())
    old = [n for n in notices if n.created_at == ARRANGED]
    assert {n.template for n in old} == {"meeting_confirmed", "meeting_arranged_provider"}
    assert {(n.status, notice_reason_words(n.status, n.last_error)) for n in old} == {
        ("skipped", WORDS[event])
    }
    own = [n for n in notices if n.created_at > ARRANGED]
    assert own and {n.status for n in own} == {"queued"}


def test_the_case_page_says_why_the_old_confirmation_was_not_sent(web: Web, cli: CliRunner) -> None:
    """The adviser reads it on the case's timeline in words, never the stored code."""
    web.clock.now = NOW
    reference = _with_meeting(web)
    _by_pages(web, cli, reference, "cancel_meeting")
    page = web.browser("adviser").get(f"/cases/{reference}").text
    text = " ".join(re.sub(r"<[^>]+>", " ", html.unescape(page)).split())
    assert "Not sent: the meeting was cancelled before it went out" in text
    assert "meeting_cancelled:" not in text
