"""Each rule lives in one use case, so every door that can reach it refuses the same way.

For each rule: the CLI (exit 2 and the message), the API (its status and the same
message), the adviser's pages (the form comes back with the message) and, where a
provider can reach it, the portal. Nothing is written by a refusal.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlmodel import col
from typer.testing import CliRunner, Result

from casework import auth, cases
from casework.cli import app as cli_app
from casework.models import Case, Notice, User
from tests.conftest import forget_cached_settings_and_engine
from tests.web.conftest import Web, make_case, reload

NOW = dt.datetime(2026, 11, 12, 10, 0, tzinfo=dt.UTC)


@dataclass
class Doors:
    web: Web
    cli: Callable[..., Result]
    api: TestClient
    tokens: dict[str, str]

    def bearer(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


@pytest.fixture
def doors(web: Web, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Doors]:
    forget_cached_settings_and_engine()
    monkeypatch.setenv("CASEWORK_DATABASE_URL", database_url)
    monkeypatch.setenv("CASEWORK_ENVIRONMENT", "test")
    monkeypatch.setenv("CASEWORK_ACTOR", "alice.adviser")
    runner = CliRunner()

    def cli(*args: str) -> Result:
        return runner.invoke(cli_app, list(args))

    web.clock.now = NOW
    tokens: dict[str, str] = {}
    with web.session() as s:
        for who in ("adviser", "provider_a"):
            user = s.get(User, web.users[who].id)
            assert user is not None
            tokens[who] = auth.create_api_token(s, user, name="doors", now=NOW)
    yield Doors(web, cli, TestClient(web.app), tokens)
    forget_cached_settings_and_engine()


def _unchanged(web: Web, reference: str, version: int) -> None:
    assert reload(web, reference).version == version, "a refusal must write nothing"


def test_a_meeting_date_years_away_is_refused_by_every_door(doors: Doors) -> None:
    web = doors.web
    case = make_case(web, provider="solution-talk", mediating=True)
    ref, version = case.reference, case.version
    words = "cannot be right"

    result = doors.cli("case", "advance", ref, "schedule_meeting", "--set", "meeting_on=2090-01-01")
    assert result.exit_code == 2 and words in result.stderr
    assert "Traceback" not in result.stderr

    answer = doors.api.post(
        f"/api/v1/cases/{ref}/events",
        json={"event": "schedule_meeting", "data": {"meeting_on": "2090-01-01"}},
        headers=doors.bearer("adviser"),
    )
    assert answer.status_code == 422 and words in answer.json()["error"]

    form = {"meeting_on-day": "1", "meeting_on-month": "1", "meeting_on-year": "2090"}
    page = web.browser("adviser").post(f"/cases/{ref}/events/schedule_meeting", form)
    assert page.status_code == 422 and words in page.text

    portal = web.browser("provider_a").post(f"/portal/cases/{ref}/events/schedule_meeting", form)
    assert portal.status_code == 422 and words in portal.text
    _unchanged(web, ref, version)


def test_an_impossible_date_is_refused_without_a_traceback(doors: Doors) -> None:
    web = doors.web
    case = make_case(web, provider="solution-talk", mediating=True)
    ref, version = case.reference, case.version
    result = doors.cli("case", "advance", ref, "schedule_meeting", "--set", "meeting_on=9999-12-31")
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    answer = doors.api.post(
        f"/api/v1/cases/{ref}/events",
        json={"event": "schedule_meeting", "data": {"meeting_on": "9999-12-31"}},
        headers=doors.bearer("adviser"),
    )
    assert answer.status_code == 422
    form = {"meeting_on-day": "31", "meeting_on-month": "12", "meeting_on-year": "9999"}
    page = web.browser("adviser").post(f"/cases/{ref}/events/schedule_meeting", form)
    assert page.status_code == 422
    _unchanged(web, ref, version)


def test_departing_from_the_suggested_provider_needs_a_reason_at_every_door(
    doors: Doors,
) -> None:
    web = doors.web
    case = make_case(web)
    with web.session() as s:
        cases.advance(
            s,
            case.reference,
            "advise",
            now=NOW,
            actor=auth.actor_for(web.users["adviser"], "cli"),
            settings=web.settings,
        )
        suggestion = cases.suggest(s, cases.get_case(s, case.reference), web.settings)
    other = next(c for c in suggestion.candidates if c.code != suggestion.code)
    ref, version = case.reference, reload(web, case.reference).version

    result = doors.cli("case", "allocate", ref, other.code)
    assert result.exit_code == 2 and "override_reason" not in result.stderr
    assert "not the suggested provider" in result.stderr

    answer = doors.api.post(
        f"/api/v1/cases/{ref}/allocation",
        json={"provider": other.code},
        headers=doors.bearer("adviser"),
    )
    assert answer.status_code == 422 and "not the suggested provider" in answer.json()["error"]

    page = web.browser("adviser").post(f"/cases/{ref}/allocate", {"provider": other.code})
    assert "not the suggested provider" in page.text
    _unchanged(web, ref, version)

    done = doors.cli("case", "allocate", ref, other.code, "--override-reason", "family asked")
    assert done.exit_code == 0, done.stderr


def test_provider_staff_cannot_record_the_advisers_steps_through_any_door(doors: Doors) -> None:
    web = doors.web
    case = make_case(web, provider="solution-talk", mediating=True)
    ref, version = case.reference, case.version
    answer = doors.api.post(
        f"/api/v1/cases/{ref}/events",
        json={"event": "decline", "data": {}},
        headers=doors.bearer("provider_a"),
    )
    assert answer.status_code == 403 and "IAS adviser" in answer.json()["error"]
    portal = web.browser("provider_a").post(f"/portal/cases/{ref}/events/decline", {})
    assert portal.status_code in (403, 409) and "adviser" in portal.text
    _unchanged(web, ref, version)


def test_only_the_adviser_issues_a_certificate_after_a_decline(doors: Doors) -> None:
    """reg 34: the mediation adviser certifies a decline; a mediator only its meeting."""
    web = doors.web
    case = make_case(web, provider="solution-talk", mediating=True)
    with web.session() as s:
        cases.advance(
            s,
            case.reference,
            "decline",
            now=NOW,
            actor=auth.actor_for(web.users["adviser"], "cli"),
            settings=web.settings,
            data={"declined_on": "2026-11-12"},
        )
    version = reload(web, case.reference).version
    answer = doors.api.post(
        f"/api/v1/cases/{case.reference}/events",
        json={"event": "issue_certificate", "data": {}},
        headers=doors.bearer("provider_a"),
    )
    assert answer.status_code in (403, 404)
    _unchanged(web, case.reference, version)
    result = doors.cli("case", "advance", case.reference, "issue_certificate")
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize(
    ("cli_args", "api_body", "words"),
    [
        (
            ("--decision-date", "1900-01-01"),
            {"decision_date": "1900-01-01"},
            "cannot be right",
        ),
        (("--name", "x" * 100_000), {"name": "x" * 100_000}, "under"),
        (("--decision-date", "2099-01-01"), {"decision_date": "2099-01-01"}, "cannot be right"),
        (("--phone", "0161 12"), {"phone": "0161 12"}, "is not a UK phone number"),
        (("--phone", "call me"), {"phone": "call me"}, "is not a phone number: give a UK"),
    ],
    ids=["decision-in-1900", "huge-name", "decision-far-ahead", "bad-phone", "not-a-phone"],
)
def test_bad_intake_is_refused_alike_by_the_cli_and_the_api(
    doors: Doors, cli_args: tuple[str, ...], api_body: dict[str, str], words: str
) -> None:
    """No traceback, the same words, nothing written."""
    base_cli = {
        "--kind": "mediation",
        "--name": "Sam Parent",
        "--phone": "07911 123456",
        "--channel": "helpline",
    }
    args = dict(base_cli)
    args.update(dict(zip(cli_args[::2], cli_args[1::2], strict=True)))
    flat = [part for pair in args.items() for part in pair]
    result = doors.cli("case", "open", *flat)
    assert result.exit_code == 2, result.stderr
    assert words in result.stderr and "Traceback" not in result.stderr
    body = {"kind": "mediation", "name": "Sam Parent", "phone": "07911 123456"}
    body["channel"] = "helpline"
    body.update(api_body)
    answer = doors.api.post("/api/v1/cases", json=body, headers=doors.bearer("adviser"))
    assert answer.status_code == 422
    with doors.web.session() as s:
        assert cases.count_cases(s) == 0


@pytest.mark.parametrize(
    "args",
    [
        ("tick", "--at", "9999-12-31T10:00"),
        ("calendar", "working-days", "2026-12-24", "1000000000"),
        ("notices", "list", "--status", "bogus"),
    ],
    ids=["at-year-9999", "a-billion-working-days", "unknown-notice-status"],
)
def test_the_cli_refuses_nonsense_in_one_line(doors: Doors, args: tuple[str, ...]) -> None:
    result = doors.cli(*args)
    assert result.exit_code == 2, result.stdout
    assert "Traceback" not in result.stderr and result.stderr.startswith("error: ")


def _withdrawn_case(web: Web, *, meeting_held: bool = False) -> str:
    """Solution Talk's case, withdrawn; with ``meeting_held`` after Solution Talk held its
    meeting (so its staff still open it: casework.cases.provider_view)."""
    case = make_case(web, provider="solution-talk", mediating=True)
    adviser = auth.actor_for(web.users["adviser"], "cli")
    with web.session() as s:
        if meeting_held:
            cases.advance(
                s, case.reference, "record_meeting", now=NOW - dt.timedelta(hours=2),
                actor=adviser, settings=web.settings,
                data={"meeting_held_on": "2026-11-12", "outcome": "none"},
            )  # fmt: skip
        cases.advance(
            s,
            case.reference,
            "withdraw",
            now=NOW,
            actor=adviser,
            settings=web.settings,
            data={"reason": "wrong family"},
        )
    return case.reference


def test_only_a_manager_reopens_a_case_at_every_door(
    doors: Doors, monkeypatch: pytest.MonkeyPatch
) -> None:
    web = doors.web
    words = "Only a manager can reopen a case"
    ref = _withdrawn_case(web)
    version = reload(web, ref).version

    result = doors.cli("case", "reopen", ref, "--reason", "wrong case")
    assert result.exit_code == 2 and words in result.stderr
    answer = doors.api.post(
        f"/api/v1/cases/{ref}/reopen",
        json={"reason": "wrong case"},
        headers=doors.bearer("adviser"),
    )
    assert answer.status_code == 403 and words in answer.json()["error"]
    page = web.browser("adviser").post(f"/cases/{ref}/reopen", {"reason": "wrong case"})
    assert page.status_code == 403 and words in page.text
    portal = web.browser("provider_a").post(f"/cases/{ref}/reopen", {"reason": "wrong case"})
    assert portal.status_code == 404
    _unchanged(web, ref, version)

    # A manager, at each door in turn (withdrawn again between them).
    monkeypatch.setenv("CASEWORK_ACTOR", web.users["manager"].email)
    result = doors.cli("case", "reopen", ref, "--reason", "withdrawn by mistake", "--json")
    assert result.exit_code == 0, result.stderr
    assert reload(web, ref).state == "mediating"

    ref = _withdrawn_case(web)
    with web.session() as s:
        manager = s.get(User, web.users["manager"].id)
        assert manager is not None
        token = auth.create_api_token(s, manager, name="doors", now=NOW)
    answer = doors.api.post(
        f"/api/v1/cases/{ref}/reopen",
        json={"reason": "withdrawn by mistake"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "mediating"

    ref = _withdrawn_case(web)
    page = web.browser("manager").post(f"/cases/{ref}/reopen", {"reason": "withdrawn by mistake"})
    assert page.status_code == 303 and reload(web, ref).state == "mediating"


def test_a_reopen_without_a_reason_is_refused_at_every_door(
    doors: Doors, monkeypatch: pytest.MonkeyPatch
) -> None:
    web = doors.web
    ref = _withdrawn_case(web)
    version = reload(web, ref).version
    monkeypatch.setenv("CASEWORK_ACTOR", web.users["manager"].email)
    words = "Why the case is being reopened"
    result = doors.cli("case", "reopen", ref)
    assert result.exit_code == 2 and words in result.stderr
    # How to give it, as the CLI's other values missing say (--set reason="...").
    assert 'Give it with --reason "..."' in result.stderr
    with web.session() as s:
        manager = s.get(User, web.users["manager"].id)
        assert manager is not None
        token = auth.create_api_token(s, manager, name="doors", now=NOW)
    answer = doors.api.post(
        f"/api/v1/cases/{ref}/reopen",
        json={"reason": " "},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 422 and words in answer.json()["error"]
    page = web.browser("manager").post(f"/cases/{ref}/reopen", {"reason": ""})
    assert page.status_code == 422 and words in page.text
    _unchanged(web, ref, version)


def test_a_possible_duplicate_is_a_warning_at_every_door(doors: Doors) -> None:
    web = doors.web
    first = make_case(web, phone="07911 123456")
    words = f"{first.reference}"

    result = doors.cli(
        "case", "open", "--kind", "mediation", "--name", "Sam", "--channel", "helpline",
        "--phone", "+447911123456",
    )  # fmt: skip
    assert result.exit_code == 0 and "possible duplicate" in result.stderr
    assert words in result.stderr
    answer = doors.api.post(
        "/api/v1/cases",
        json={"kind": "mediation", "name": "Sam", "channel": "helpline", "phone": "07911123456"},
        headers=doors.bearer("adviser"),
    )
    assert answer.status_code == 201
    assert any("Possible duplicate" in w and words in w for w in answer.json()["warnings"])
    page = web.browser("adviser").post(
        "/cases/new",
        {
            "kind": "mediation",
            "name": "Sam",
            "channel": "helpline",
            "phone": "07911 123456",
            "preferred_channels": "sms",
            "sms_consent": "yes",
        },
    )
    assert page.status_code == 200 and f'href="/cases/{first.reference}"' in page.text


def test_a_meeting_recorded_before_its_day_is_a_warning_at_every_door(doors: Doors) -> None:
    web = doors.web
    words = "before the day it was scheduled for"
    refs = []
    for _ in range(3):
        case = make_case(web, provider="solution-talk", mediating=True)
        with web.session() as s:
            cases.advance(
                s,
                case.reference,
                "schedule_meeting",
                now=NOW,
                actor=auth.actor_for(web.users["adviser"], "cli"),
                settings=web.settings,
                data={"meeting_on": "2026-11-30"},
            )
        refs.append(case.reference)
    held = ["meeting_held_on=2026-11-12", "outcome=none"]
    result = doors.cli(
        "case", "advance", refs[0], "record_meeting", "--at", "2026-11-12T10:00Z",
        "--set", held[0], "--set", held[1],
    )  # fmt: skip
    assert result.exit_code == 0 and words in result.stderr
    answer = doors.api.post(
        f"/api/v1/cases/{refs[1]}/events",
        json={
            "event": "record_meeting",
            "data": {"meeting_held_on": "2026-11-12", "outcome": "none"},
        },
        headers=doors.bearer("adviser"),
    )
    assert answer.status_code == 200 and any(words in w for w in answer.json()["warnings"])
    portal = web.browser("provider_a").post(
        f"/portal/cases/{refs[2]}/events/record_meeting",
        {
            "meeting_held_on-day": "12",
            "meeting_held_on-month": "11",
            "meeting_held_on-year": "2026",
            "outcome": "none",
        },
    )
    assert portal.status_code == 303 and "warned=1" in portal.headers["location"]
    assert words in web.browser("provider_a").get(portal.headers["location"]).text
    for ref in refs:
        assert reload(web, ref).meeting_held_on is not None


def test_correcting_a_held_detail_without_a_reason_is_refused_at_every_door(
    doors: Doors,
) -> None:
    """The API has no door to the case details; the CLI and the case page refuse alike."""
    web = doors.web
    case = make_case(web, child_name="Robin")
    ref, version = case.reference, case.version
    words = "Why the details are being corrected"
    result = doors.cli("case", "update", ref, "--child-name", "Robyn")
    assert result.exit_code == 2 and words in result.stderr
    page = web.browser("adviser").post(
        f"/cases/{ref}/facts", {"version": str(version), "child_name": "Robyn"}
    )
    assert page.status_code == 422 and words in page.text
    _unchanged(web, ref, version)
    result = doors.cli("case", "update", ref, "--child-name", "Robyn", "--reason", "misspelt")
    assert result.exit_code == 0, result.stderr
    assert reload(web, ref).child_name == "Robyn"


def test_a_step_on_a_withdrawn_case_says_so_once_and_who_reopens_it_at_every_door(
    doors: Doors,
) -> None:
    """Withdrawn is said once (not again as "nothing more can be recorded"), with who can
    reopen it; the CLI adds the command. The provider that held the meeting, whose
    allocation the withdrawal ended, is told the case is withdrawn, not to accept the
    allocation first; one that held none no longer finds the case at all."""
    web = doors.web
    ref = _withdrawn_case(web)
    version = reload(web, ref).version
    held = _withdrawn_case(web, meeting_held=True)
    held_version = reload(web, held).version
    words = "is withdrawn. Only an IAS manager can reopen it."

    result = doors.cli("case", "advance", ref, "record_icb_told")
    assert result.exit_code == 2
    assert words in result.stderr and result.stderr.lower().count("withdrawn") == 1
    assert f'To reopen it: casework case reopen {ref} --reason "..."' in result.stderr

    answer = doors.api.post(
        f"/api/v1/cases/{ref}/events",
        json={"event": "record_icb_told", "data": {}},
        headers=doors.bearer("adviser"),
    )
    body = answer.json()
    assert answer.status_code == 409 and words in body["error"]
    assert body["error"].lower().count("withdrawn") == 1 and "casework" not in body["error"]
    # The API's own way to reopen it, and whose token it takes.
    assert f"To reopen it: POST /api/v1/cases/{ref}/reopen" in body["error"]
    assert "a manager's API token" in body["error"]

    page = web.browser("adviser").post(
        f"/cases/{ref}/events/record_icb_told", {"version": str(version)}
    )
    assert page.status_code == 409 and words in page.text

    def provider_doors(reference: str, at_version: int) -> tuple[Any, Any]:
        return (
            web.browser("provider_a").post(
                f"/portal/cases/{reference}/events/schedule_meeting",
                {"meeting_on": "2026-12-01", "version": str(at_version)},
            ),
            doors.api.post(
                f"/api/v1/cases/{reference}/events",
                json={"event": "schedule_meeting", "data": {"meeting_on": "2026-12-01"}},
                headers=doors.bearer("provider_a"),
            ),
        )

    for door in provider_doors(held, held_version):
        assert door.status_code == 409, door.text
        assert words in door.text and "Accept the allocation" not in door.text
    for door in provider_doors(ref, version):
        assert door.status_code == 404, door.text
        assert "withdrawn" not in door.text
    _unchanged(web, ref, version)
    _unchanged(web, held, held_version)


PHONE_WORDS = (
    "give a UK number such as 07700 900123 or 0161 209 8356, or an international number"
    " starting with +"
)
# The phonenumbers library's own words, which must never reach a person.
LIBRARY_WORDS = ("did not seem to be", "NumberParseException", "viable phone number")


def _intake_form(phone: str, **more: str) -> dict[str, str]:
    return {
        "kind": "mediation",
        "name": "Sam Parent",
        "channel": "helpline",
        "phone": phone,
        "email": "sam.parent@example.org",
        "preferred_channels": "sms,email",
        "sms_consent": "yes",
        **more,
    }


def _contact_form(case_version: int, phone: str) -> dict[str, Any]:
    return {
        "version": str(case_version),
        "name": "Jo Smith",
        "phone": phone,
        "email": "jo.family@example.org",
        "preferred_channels": ["sms", "email"],
        "sms_consent": "yes",
        "reason": "The family gave a new number",
    }


def _open_by_cli(doors: Doors, phone: str) -> Result:
    return doors.cli(
        "case", "open", "--kind", "mediation", "--name", "Sam Parent", "--channel", "helpline",
        "--phone", phone, "--email", "sam.parent@example.org",
    )  # fmt: skip


def _open_by_api(doors: Doors, phone: str) -> Any:
    body = {"kind": "mediation", "name": "Sam Parent", "channel": "helpline", "phone": phone}
    body["email"] = "sam.parent@example.org"
    return doors.api.post("/api/v1/cases", json=body, headers=doors.bearer("adviser"))


@pytest.mark.parametrize(
    ("typed", "words"),
    [("call me", "is not a phone number"), ("202-555-0123", "is not a UK phone number")],
    ids=["words", "american-way"],
)
def test_a_number_we_cannot_use_is_refused_in_our_words_at_every_door(
    doors: Doors, typed: str, words: str
) -> None:
    """Not the phonenumbers library's words: what to type instead, with examples. A
    number written without + is read as a UK one, so 202-555-0123 is refused."""
    web = doors.web
    result = _open_by_cli(doors, typed)
    assert result.exit_code == 2, result.stdout
    answer = _open_by_api(doors, typed)
    assert answer.status_code == 422 and answer.json()["field"] == "phone"
    page = web.browser("adviser").post("/cases/new", _intake_form(typed))
    assert page.status_code == 422
    case = make_case(web)
    contact = web.browser("adviser").post(
        f"/cases/{case.reference}/contact", _contact_form(case.version, typed)
    )
    assert contact.status_code == 422
    for door in (result.stderr, answer.json()["error"], page.text, contact.text):
        assert words in door and PHONE_WORDS in door
        assert not any(raw in door for raw in LIBRARY_WORDS), door
    _unchanged(web, case.reference, case.version)
    with web.session() as s:
        assert cases.count_cases(s) == 1


def _family_phones_and_channels(web: Web) -> dict[str, tuple[str, set[str]]]:
    """Each case's family phone and the channels of the notices queued to the family."""
    with web.session() as s:
        out: dict[str, tuple[str, set[str]]] = {}
        for case in s.execute(select(Case)).scalars():
            family = cases.family_of(s, case)
            assert family is not None
            sent = s.execute(
                select(Notice.channel).where(
                    col(Notice.case_id) == case.id, col(Notice.recipient_role) == "family"
                )
            ).scalars()
            out[case.reference] = (family.phone, set(sent))
        return out


def test_a_new_uk_mobile_range_is_kept_and_texted_at_every_door(doors: Doors) -> None:
    """07700 900123 has the shape of a UK mobile though the library's metadata does not
    list its range yet: refusing it would lose the family's contact."""
    web = doors.web
    result = _open_by_cli(doors, "07700 900123")
    assert result.exit_code == 0, result.stderr
    assert "cannot text" not in result.stderr
    answer = _open_by_api(doors, "+44 7700 900123")
    assert answer.status_code == 201, answer.text
    assert not any("cannot text" in w for w in answer.json()["warnings"])
    form = _intake_form("07700900123", confirmed="yes")
    page = web.browser("adviser").post("/cases/new", form)
    assert page.status_code == 303 and "warned" not in page.headers["location"]
    case = make_case(web, phone="07911 123456")
    contact = web.browser("adviser").post(
        f"/cases/{case.reference}/contact", _contact_form(case.version, "07700 900 123")
    )
    assert contact.status_code == 303, contact.text
    assert "cannot text" not in web.browser("adviser").get(contact.headers["location"]).text
    found = _family_phones_and_channels(web)
    assert {phone for phone, _ in found.values()} == {"+447700900123"}
    opened = [channels for ref, (_, channels) in found.items() if ref != case.reference]
    assert len(opened) == 3 and all("sms" in channels for channels in opened)


def test_a_number_abroad_is_kept_and_the_adviser_told_it_cannot_be_texted_at_every_door(
    doors: Doors,
) -> None:
    """A parent abroad (a service family) is reached by a call or email: texts go only to
    UK mobiles, so the adviser choosing texts is told when the number is saved, and no
    text is queued for it."""
    web = doors.web
    words = "we can call or email this number but cannot text it"
    result = _open_by_cli(doors, "+1 202 555 0123")
    assert result.exit_code == 0, result.stderr
    assert words in result.stderr and "only to UK mobile numbers" in result.stderr
    answer = _open_by_api(doors, "001 202 555 0123")
    assert answer.status_code == 201, answer.text
    assert any(words in w for w in answer.json()["warnings"])
    browser = web.browser("adviser")
    check = browser.post("/cases/new", _intake_form("+1 (202) 555-0123"))
    assert check.status_code == 200 and words in check.text
    opened = browser.post("/cases/new", _intake_form("+1 (202) 555-0123", confirmed="yes"))
    assert opened.status_code == 303 and "warned=1" in opened.headers["location"]
    assert words in browser.get(opened.headers["location"]).text
    case = make_case(web, phone="07911 123456")
    contact = browser.post(
        f"/cases/{case.reference}/contact", _contact_form(case.version, "+1 202 555 0123")
    )
    assert contact.status_code == 303, contact.text
    shown = browser.get(contact.headers["location"]).text
    assert words in shown and "Family contact corrected." in shown
    found = _family_phones_and_channels(web)
    assert {phone for phone, _ in found.values()} == {"+12025550123"}
    opened_here = [channels for ref, (_, channels) in found.items() if ref != case.reference]
    assert len(opened_here) == 3
    assert all(channels and "sms" not in channels for channels in opened_here)
    # Email only: nothing to warn about.
    quiet = doors.api.post(
        "/api/v1/cases",
        json={
            "kind": "mediation",
            "name": "Alex Parent",
            "channel": "helpline",
            "phone": "+1 202 555 0199",
            "email": "alex@example.org",
            "preferred_channels": ["email"],
        },
        headers=doors.bearer("adviser"),
    )
    assert quiet.status_code == 201 and not any(words in w for w in quiet.json()["warnings"])
