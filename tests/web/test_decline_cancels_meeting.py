"""A family declining mediation while a meeting is arranged: by every door that records a
decline (CLI, API, the adviser's pages), the family (text and email) and the provider
(email) are sent the meeting's cancellation. The rule is the notice config's
``only_when = "meeting_cancelled"``, applied by the one use case behind every door."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlmodel import col
from typer.testing import CliRunner

from casework import auth, cases
from casework.cli import app as cli_app
from casework.models import Notice, User
from tests.conftest import cli_on
from tests.web.conftest import Web, make_case, reload

NOW = dt.datetime(2026, 11, 12, 10, 0, tzinfo=dt.UTC)
CANCELLED = {
    ("meeting_cancelled_declined", "family", "sms"),
    ("meeting_cancelled_declined", "family", "email"),
    ("meeting_cancelled_declined_provider", "provider", "email"),
}


@pytest.fixture
def cli(web: Web, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    with cli_on(database_url, monkeypatch) as runner:
        yield runner


def _with_meeting(web: Web, *, schedule: bool = True) -> str:
    case = make_case(web, provider="solution-talk", mediating=True)
    if schedule:
        with web.session() as s:
            cases.advance(
                s,
                case.reference,
                "schedule_meeting",
                now=NOW - dt.timedelta(days=1),
                actor=auth.actor_for(web.users["adviser"], "cli"),
                settings=web.settings,
                data={"meeting_on": "2026-12-09", "meeting_time": "10:00"},
            )
    return case.reference


def _declined_notices(web: Web, reference: str) -> set[tuple[str, str, str]]:
    with web.session() as s:
        case = cases.get_case(s, reference)
        assert case.state == "declined"
        rows = s.execute(
            select(Notice).where(
                col(Notice.case_id) == case.id, col(Notice.template).like("meeting_cancelled%")
            )
        ).scalars()
        return {(n.template, n.recipient_role, n.channel) for n in rows}


def _by_cli(web: Web, cli: CliRunner, reference: str) -> None:
    result = cli.invoke(
        cli_app,
        ["case", "advance", reference, "decline", "--set", "declined_on=2026-11-12", "--at",
         "2026-11-12T10:00"],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr


def _by_api(web: Web, cli: CliRunner, reference: str) -> None:
    with web.session() as s:
        user = s.get(User, web.users["adviser"].id)
        assert user is not None
        token = auth.create_api_token(s, user, name="decline", now=NOW)
    answer = TestClient(web.app).post(
        f"/api/v1/cases/{reference}/events",
        json={"event": "decline", "data": {"declined_on": "2026-11-12"}},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 200, answer.text


def _by_pages(web: Web, cli: CliRunner, reference: str) -> None:
    page = web.browser("adviser").post(
        f"/cases/{reference}/events/decline",
        {
            "version": str(reload(web, reference).version),
            "declined_on-day": "12",
            "declined_on-month": "11",
            "declined_on-year": "2026",
        },
    )
    assert page.status_code == 303, page.text


DOORS: dict[str, Callable[[Web, CliRunner, str], None]] = {
    "cli": _by_cli,
    "api": _by_api,
    "pages": _by_pages,
}


@pytest.mark.parametrize("door", sorted(DOORS))
def test_a_decline_cancels_the_arranged_meeting_for_family_and_provider(
    web: Web, cli: CliRunner, door: str
) -> None:
    web.clock.now = NOW
    reference = _with_meeting(web)
    DOORS[door](web, cli, reference)
    assert _declined_notices(web, reference) == CANCELLED


@pytest.mark.parametrize("door", sorted(DOORS))
def test_a_decline_with_no_meeting_arranged_cancels_nothing(
    web: Web, cli: CliRunner, door: str
) -> None:
    web.clock.now = NOW
    reference = _with_meeting(web, schedule=False)
    DOORS[door](web, cli, reference)
    assert _declined_notices(web, reference) == set()
