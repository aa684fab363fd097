"""The operator CLI end to end, on SQLite and PostgreSQL: what an adviser types and sees.

This is the "done when" walk of the design card: upgrade the database, open a
mediation case from a helpline call, take it through advice, a declined mediation,
the certificate and the appeal window to closure, and at each step read back
``case show --json`` to check the clocks the family will be told about (kind, due
date, status and the one-line explanation). The refusals are checked as a person
meets them: one line on stderr naming what to do, and a meaningful exit code.

The CLI reads its settings and engine through ``lru_cache``d functions; the
``cli`` fixture clears both caches around each test so every test talks to its
own database.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from casework.cli import app
from casework.config import get_settings
from tests.conftest import forget_cached_settings_and_engine

Run = Callable[..., Result]
REFERENCE = re.compile(r"^MED-2026-\d{4}$")


def cli_on(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Run:
    """``run("case", "show", ref, expect=0)``: the real Typer app on ``database_url``
    (the caller clears the cached settings and engine afterwards)."""
    forget_cached_settings_and_engine()
    monkeypatch.setenv("CASEWORK_DATABASE_URL", database_url)
    monkeypatch.setenv("CASEWORK_ENVIRONMENT", "test")
    monkeypatch.setenv("CASEWORK_ACTOR", "alice.adviser")
    runner = CliRunner()

    def run(*args: str, expect: int = 0) -> Result:
        result = runner.invoke(app, list(args))
        assert result.exit_code == expect, (
            f"casework {' '.join(args)} exited {result.exit_code}, expected {expect}\n"
            f"stdout: {result.stdout}\nstderr: {result.stderr}\nexception: {result.exception!r}"
        )
        return result

    return run


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Run]:
    """``cli("case", "show", ref, expect=0)``: run the real Typer app on this test's database."""
    yield cli_on(database_url, monkeypatch)
    forget_cached_settings_and_engine()


def as_json(result: Result) -> Any:
    """Every ``--json`` output must parse on its own (no log lines mixed into stdout)."""
    return json.loads(result.stdout)


def show(cli: Run, reference: str) -> dict[str, Any]:
    data = as_json(cli("case", "show", reference, "--json"))
    assert isinstance(data, dict)
    return data


def clocks(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Deadlines by kind; each kind appears once on this walk."""
    kinds = [d["kind"] for d in data["deadlines"]]
    assert len(kinds) == len(set(kinds)), kinds
    return {d["kind"]: d for d in data["deadlines"]}


def open_case(cli: Run, *extra: str) -> str:
    result = cli(
        "case",
        "open",
        "--kind",
        "mediation",
        "--name",
        "Jo Family",
        "--channel",
        "helpline",
        "--phone",
        "07911 123456",
        "--decision-date",
        "2026-11-02",
        "--decision-type",
        "refuse_assessment",
        "--at",
        "2026-11-09T10:00",
        *extra,
    )
    reference = result.stdout.strip()
    assert REFERENCE.match(reference), result.stdout
    return reference


def one_line_error(result: Result) -> str:
    """A refusal is one line on stderr and nothing on stdout."""
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


# --- The walk ------------------------------------------------------------------------------


def test_the_done_when_walk(cli: Run) -> None:
    """Decision Mon 2 Nov 2026; call Mon 9 Nov; advised Tue 10; declined Wed 11 Nov;
    certificate Fri 13 Nov; appeal ready Mon 16 Nov; appeal lodged Tue 1 Dec 2026."""
    upgraded = cli("db", "upgrade")
    assert "database at head" in upgraded.stdout
    assert "Solution Talk" in upgraded.stdout

    reference = open_case(cli)
    assert reference == "MED-2026-0001"  # the first mediation case of 2026 on a new database

    data = show(cli, reference)
    assert (data["state"], data["version"]) == ("requested", 1)
    assert data["allowed_events"] == ["advise", "mark_exempt", "withdraw"]
    assert data["contact"]["phone"] == "+447911123456"
    contact = clocks(data)["contact_adviser"]
    # reg 33: 2 months after the decision letter; this clock does not roll to a working day
    assert (contact["status"], contact["due_date"]) == ("open", "2027-01-02")
    assert contact["explanation"] == (
        "decision sent 2 November 2026 + 2 months = Saturday 2 January 2027"
    )

    advised = as_json(
        cli("case", "advance", reference, "advise", "--at", "2026-11-10T10:00", "--json")
    )
    assert advised["state"] == "advised"
    assert advised["allowed_events"] == ["mark_exempt", "decline", "withdraw"]  # no provider yet

    cli("case", "advance", reference, "decline", "--at", "2026-11-11T10:00")
    data = show(cli, reference)
    assert data["state"] == "declined"
    by_kind = clocks(data)
    assert by_kind["contact_adviser"]["status"] == "met"
    cert = by_kind["certificate_after_decline"]
    # reg 34: Wed 11 Nov + 3 working days = Thu 12, Fri 13, Mon 16 Nov
    assert (cert["status"], cert["due_date"]) == ("open", "2026-11-16")
    assert cert["citation"] == "SEND Regulations 2014, reg 34"
    assert "11 November 2026 + 3 working days = Monday 16 November 2026" in cert["explanation"]

    cli("case", "advance", reference, "issue_certificate", "--at", "2026-11-13T10:00")
    data = show(cli, reference)
    by_kind = clocks(data)
    assert by_kind["certificate_after_decline"]["status"] == "met"
    appeal = by_kind["appeal"]
    # r.20: later of 2 Nov + 2 months (Sat 2 Jan 2027) and 13 Nov + 1 month (13 Dec 2026);
    # r.12: Saturday, so the next working day, Monday 4 January 2027, by 5pm (GMT)
    assert (appeal["status"], appeal["due_date"]) == ("open", "2027-01-04")
    assert appeal["due_at"] == "2027-01-04T17:00:00+00:00"
    assert appeal["explanation"] == (
        "decision sent 2 November 2026 + 2 months = 2 January 2027; "
        "certificate 13 November 2026 + 1 month = 13 December 2026; "
        "later date: 2 January 2027; "
        "2 January 2027 is not a working day (Saturday), so Monday 4 January 2027; "
        "appeal must reach the Tribunal by Monday 4 January 2027, 5pm"
    )
    assert data["appeal_due"] == "2027-01-04"
    assert data["facts"]["certificate_type"] == "declined"

    cli("case", "advance", reference, "confirm_appeal_ready", "--at", "2026-11-16T10:00")
    data = show(cli, reference)
    assert data["state"] == "appeal_ready"
    assert data["allowed_events"] == ["close", "withdraw"]
    assert clocks(data)["appeal"]["status"] == "open"

    closed = as_json(
        cli(
            "case",
            "advance",
            reference,
            "close",
            "--set",
            "outcome=appeal_lodged",
            "--at",
            "2026-12-01T10:00",
            "--json",
        )
    )
    assert (closed["state"], closed["version"]) == ("closed", 6)
    assert closed["allowed_events"] == []
    assert clocks(closed)["appeal"]["status"] == "met"
    assert all(d["status"] != "open" for d in closed["deadlines"])
    assert [(e["event"], e["from"], e["to"]) for e in closed["events"]] == [
        ("open", None, "requested"),
        ("advise", "requested", "advised"),
        ("decline", "advised", "declined"),
        ("issue_certificate", "declined", "certificate_issued"),
        ("confirm_appeal_ready", "certificate_issued", "appeal_ready"),
        ("close", "appeal_ready", "closed"),
    ]
    assert all(e["actor"] == "cli:alice.adviser" for e in closed["events"])
    assert closed["events"][-1]["data"] == {"outcome": "appeal_lodged"}

    listed = as_json(cli("case", "list", "--json"))
    assert [(c["reference"], c["state"]) for c in listed] == [(reference, "closed")]


# --- Refusals --------------------------------------------------------------------------------


def test_an_illegal_event_exits_2_naming_the_allowed_events(cli: Run) -> None:
    reference = open_case(cli)
    result = cli("case", "advance", reference, "close", "--set", "outcome=no_appeal", expect=2)
    assert one_line_error(result) == (
        "error: Cannot record “Close case”: the case is Requested. Possible now: Record"
        " advice given; Mark exempt (placement only); Withdraw."
    )
    assert show(cli, reference)["version"] == 1  # nothing was recorded


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("--channel", "helpline", "--phone", "0161 12"), "Telephone number"),
        (("--channel", "email", "--email", "jo@example.org"), "Telephone number"),
        (("--channel", "helpline", "--phone", "07911 123456", "--email", "jo@"), "Email address"),
    ],
    ids=["malformed-phone", "email-without-phone", "malformed-email"],
)
def test_bad_contact_details_exit_non_zero_with_a_one_line_reason(
    cli: Run, args: tuple[str, ...], field: str
) -> None:
    result = cli("case", "open", "--kind", "mediation", "--name", "Jo Family", *args, expect=2)
    assert one_line_error(result).startswith(f"error: {field}: ")
    assert as_json(cli("case", "list", "--json")) == []


def test_bad_event_data_names_the_field(cli: Run) -> None:
    reference = open_case(cli)
    cli("case", "advance", reference, "advise", "--at", "2026-11-10T10:00")
    result = cli(
        "case", "advance", reference, "decline", "--set", "declined_on=11/11/2026", expect=2
    )
    assert "The date the family said it does not want" in one_line_error(result)
    assert "give a real date, for example" in result.stderr
    unknown = cli("case", "show", "MED-2026-9999", expect=3)
    assert "no case with the reference" in one_line_error(unknown)


def test_notes_and_calls_from_the_cli(cli: Run) -> None:
    """A note, a shared note and a call, each one line back; a bad date or direction refused."""
    from sqlmodel import Session

    from casework import cases
    from casework.db import get_engine

    reference = open_case(cli)
    note = cli("case", "note", reference, "--text", "Mother prefers email", "--at", "2026-11-10")
    assert note.stdout.strip() == f"Note saved on {reference}, for the IAS only."
    shared = as_json(
        cli(
            "case",
            "note",
            reference,
            "--text",
            "Morning meetings only",
            "--shared",
            "--json",
            "--at",
            "2026-11-10",
        )
    )
    assert shared["shared"] is True
    call = cli(
        "case",
        "call",
        reference,
        "--on",
        "2026-11-10",
        "--direction",
        "out",
        "--who",
        "LA officer",
        "--summary",
        "Chased the decision letter",
        "--at",
        "2026-11-11T09:00",
    )
    assert call.stdout.strip() == f"Call logged on {reference} (Tuesday 10 November 2026)."
    future = cli(
        "case",
        "call",
        reference,
        "--on",
        "2026-11-12",
        "--direction",
        "in",
        "--who",
        "mother",
        "--summary",
        "Asked for news",
        "--at",
        "2026-11-11T09:00",
        expect=2,
    )
    assert "The date of the call (Thursday 12 November 2026) is after today" in one_line_error(
        future
    )
    sideways = cli(
        "case",
        "call",
        reference,
        "--on",
        "2026-11-10",
        "--direction",
        "sideways",
        "--who",
        "mother",
        "--summary",
        "x",
        "--at",
        "2026-11-11T09:00",
        expect=2,
    )
    assert one_line_error(sideways).startswith("error: Who rang:")
    with Session(get_engine(get_settings())) as s:
        notes = cases.notes_of(s, cases.get_case(s, reference))
        assert [(n.kind, n.shared, n.recorded_by) for n in notes] == [
            ("call", False, "cli:alice.adviser"),
            ("note", True, "cli:alice.adviser"),
            ("note", False, "cli:alice.adviser"),
        ]


def test_a_stale_expected_version_exits_4(cli: Run) -> None:
    reference = open_case(cli)
    cli("case", "advance", reference, "advise", "--expected-version", "1", "--at", "2026-11-10")
    result = cli(
        "case",
        "advance",
        reference,
        "withdraw",
        "--set",
        "reason=moved",
        "--expected-version",
        "1",
        expect=4,
    )
    assert "changed by someone else" in one_line_error(result)


# --- --json everywhere -------------------------------------------------------------------------


def test_every_command_speaks_json(cli: Run) -> None:
    """Scripts and the web layer parse these; a stray print would break them."""
    upgraded = as_json(cli("db", "upgrade", "--json"))
    assert upgraded["providers"] == ["solution-talk", "collis", "kids", "link", "together-trust"]
    opened = as_json(
        cli(
            "case",
            "open",
            "--kind",
            "disagreement",
            "--name",
            "Sam Parent",
            "--channel",
            "email",
            "--phone",
            "0161 209 8356",
            "--email",
            "sam@example.org",
            "--at",
            "2026-11-09T10:00",
            "--json",
        )
    )
    reference = opened["reference"]
    assert reference.startswith("DR-2026-")
    assert clocks(opened)["dr_advice"]["due_date"] == "2026-11-16"

    events = as_json(cli("case", "events", reference, "--json"))
    assert events["state"] == "requested"
    assert [e["event"] for e in events["events"]] == ["advise", "withdraw"]
    withdraw = next(e for e in events["events"] if e["event"] == "withdraw")
    assert withdraw["fields"][0]["name"] == "reason"
    assert withdraw["fields"][0]["required"] is True

    as_json(cli("case", "advance", reference, "advise", "--at", "2026-11-10T10:00", "--json"))
    allocated = as_json(
        cli(
            "case",
            "allocate",
            reference,
            "KIDS",
            "--at",
            "2026-11-10T11:00",
            "--json",
            "--override-reason",
            "the family asked for KIDS",
        )
    )
    assert allocated["state"] == "allocated"
    assert allocated["provider"] == {"code": "kids", "name": "KIDS"}
    responded = as_json(
        cli("case", "respond", reference, "accept", "--at", "2026-11-11T10:00", "--json")
    )
    assert responded["allocation_status"] == "accepted"

    other = open_case(cli)
    updated = as_json(
        cli(
            "case",
            "update",
            other,
            "--decision-type",
            "cease_plan",
            "--reason",
            "the LA's letter was misread",
            "--at",
            "2026-11-10",
            "--json",
        )
    )
    assert updated["decision_type"] == "cease_plan"

    listed = as_json(cli("case", "list", "--json"))
    assert {c["reference"] for c in listed} == {reference, other}
    only_allocated = as_json(cli("case", "list", "--state", "allocated", "--json"))
    assert [c["reference"] for c in only_allocated] == [reference]

    open_clocks = as_json(cli("deadlines", "--json"))
    assert open_clocks, "the two cases have open clocks"
    assert all(d["status"] == "open" for d in open_clocks)
    assert {d["reference"] for d in open_clocks} == {reference, other}
    due = [d["due_at"] for d in open_clocks]
    assert due == sorted(due), "deadlines are listed soonest first"
    met = as_json(cli("deadlines", "--status", "met", "--json"))
    assert {(d["reference"], d["kind"]) for d in met} >= {
        (reference, "dr_advice"),
        (reference, "dr_allocation"),
        (reference, "allocation_acceptance"),
    }

    days = as_json(cli("calendar", "working-days", "2026-12-23", "3", "--json"))
    assert days["result"] == "2026-12-30"
    assert [s["date"] for s in days["skipped"]] == [
        "2026-12-25",
        "2026-12-26",
        "2026-12-27",
        "2026-12-28",
    ]
    appeal = as_json(
        cli(
            "calendar",
            "appeal-deadline",
            "--decision",
            "2027-03-03",
            "--certificate",
            "2027-04-10",
            "--json",
        )
    )
    assert (appeal["due_date"], appeal["due_time"]) == ("2027-05-10", "17:00")
    assert appeal["due_at"] == "2027-05-10T16:00:00+00:00"  # 5pm BST


def test_calendar_appeal_deadline_reads_like_the_card(cli: Run) -> None:
    """domain.md's own example: decision 3 March, certificate 10 April -> Monday 10 May, 5pm."""
    result = cli(
        "calendar", "appeal-deadline", "--decision", "2027-03-03", "--certificate", "2027-04-10"
    )
    first, explanation, citation = result.stdout.strip().splitlines()
    assert first == "Monday 10 May 2027, 5pm"
    assert explanation == (
        "decision sent 3 March 2027 + 2 months = 3 May 2027; "
        "certificate 10 April 2027 + 1 month = 10 May 2027; later date: 10 May 2027; "
        "appeal must reach the Tribunal by Monday 10 May 2027, 5pm"
    )
    assert (
        citation
        == "(Tribunal Procedure (First-tier Tribunal) (HESC) Rules 2008, r.20(1)(c) and r.12)"
    )


def test_calendar_working_days_text(cli: Run) -> None:
    result = cli("calendar", "working-days", "2026-12-23", "3")
    assert result.stdout.startswith(
        "Wednesday 23 December 2026 + 3 working days = Wednesday 30 December 2026"
    )
    assert "Christmas Day" in result.stdout


def test_a_brand_new_embedded_database_is_ready_without_db_upgrade(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's CLI walk on a fresh clone: the first command migrates and loads providers."""
    forget_cached_settings_and_engine()
    monkeypatch.setenv("CASEWORK_DATABASE_URL", f"sqlite:///{tmp_path}/fresh.db")
    monkeypatch.setenv("CASEWORK_ENVIRONMENT", "test")
    runner = CliRunner()
    try:
        opened = runner.invoke(
            app,
            [
                "case",
                "open",
                "--kind",
                "mediation",
                "--name",
                "Sam Parent",
                "--phone",
                "07911 123456",
                "--channel",
                "helpline",
                "--at",
                "2026-11-02T10:00",
            ],
        )
        assert opened.exit_code == 0, opened.stderr
        reference = opened.stdout.strip()
        allocated = runner.invoke(
            app,
            ["case", "allocate", reference, "kids", "--json", "--override-reason", "family asked"],
        )
        assert allocated.exit_code == 0, allocated.stderr
        assert json.loads(allocated.stdout)["provider"]["name"] == "KIDS"
    finally:
        forget_cached_settings_and_engine()


def test_a_value_the_step_needs_names_how_to_give_it(cli: Run) -> None:
    """The rule's words, then the flag that gives the value: the person at the prompt
    should not have to look up how a field is set."""
    reference = open_case(cli)
    missing = one_line_error(cli("case", "advance", reference, "withdraw", expect=2))
    assert missing == (
        'error: Why the family withdrew: this is needed. Give it with --set reason="..."'
    )
    # A value given but wrong is not a value missing: no hint to set it again.
    unknown = one_line_error(
        cli("case", "advance", reference, "withdraw", "--set", "reason=x", "--set", "colour=blue",
            expect=2)
    )  # fmt: skip
    assert "does not take colour" in unknown and "Give it with" not in unknown
    # The names to type, each with its words: not only the words.
    assert "The names --set takes here: reason (Why the family withdrew)" in unknown
    cli("case", "advance", reference, "withdraw", "--set", "reason=moved away")
