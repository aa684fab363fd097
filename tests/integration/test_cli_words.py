"""The CLI's plain output reads as words, on SQLite and PostgreSQL: the house rule at a terminal.

"Users read words, not codes": no ISO time, actor id, state, template, channel,
recipient role or clock kind reaches a person. The demo cases (every state, sent and
skipped notices, a certificate) are loaded, one tick is run, and every listing
command's plain output is checked against the codes it used to print, and for the
words the pages use (casework.cases.words). ``--json`` stays machine-readable: codes
and ISO times, as scripts expect.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator

import pytest

from casework import deadlines as dl
from casework.cases import words
from casework.config import get_settings
from casework.db import get_engine, session_scope
from casework.demo import ensure_demo_users, load_demo_cases
from tests.conftest import forget_cached_settings_and_engine
from tests.integration.test_cli import Run, cli_on

ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}(T| \d{2}:\d{2})")
ISO_DAY = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
ACTOR_ID = re.compile(r"\b(user|system|cli|token|family|demo):\S")
# A stored code: lower-case words joined by underscores (certificate_issued, escalation_near).
SNAKE_CODE = re.compile(r"(?<![\w@.\-/])[a-z]+(?:_[a-z0-9]+)+(?![\w@.\-/])")


def codes_in(text: str) -> list[str]:
    """Every code a person should not read in ``text``: ISO dates and times, actor ids,
    snake_case values."""
    return [
        m.group(0)
        for pattern in (ISO_TIME, ISO_DAY, ACTOR_ID, SNAKE_CODE)
        for m in pattern.finditer(text)
    ]


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Run]:
    """The real Typer app on this test's database, with the demo cases loaded and one tick
    run (so the outbox holds sent and skipped notices)."""
    run = cli_on(database_url, monkeypatch)
    run("db", "upgrade")
    settings = get_settings()
    now = dt.datetime.now(dt.UTC)
    with session_scope(get_engine(settings)) as session:
        ensure_demo_users(session, settings, now)
        loaded = load_demo_cases(session, settings, now)
    assert loaded and "skipped" not in " ".join(loaded), loaded
    run("tick")
    yield run
    forget_cached_settings_and_engine()


def plain(cli: Run, *args: str) -> str:
    """A command's plain output, asserted free of codes."""
    text = cli(*args).stdout
    assert text.strip()
    assert codes_in(text) == [], f"casework {' '.join(args)} printed codes:\n{text}"
    return text


def test_case_and_deadline_listings_say_states_kinds_and_days_in_words(cli: Run) -> None:
    listed = plain(cli, "case", "list")
    assert "Disagreement resolution" in listed and "Certificate issued" in listed
    assert "Appeal ready" in listed and "Mediating" in listed
    # The old columns printed the kind and state codes: mediation, advised, requested.
    assert not re.search(r"^\S+\s+(mediation|disagreement)\s", listed, re.M)
    assert not re.search(r"\s(requested|advised|mediating|allocated|declined)$", listed, re.M)

    due = plain(cli, "deadlines")
    assert "Family contacts the mediation adviser (open)" in due
    assert re.search(r"^(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday) \d", due, re.M)
    met = plain(cli, "deadlines", "--status", "met")
    assert "Provider accepts the allocation (met)" in met


def test_the_outbox_listing_says_what_to_whom_how_and_when(cli: Run) -> None:
    text = plain(cli, "notices", "list")
    assert "Request received\n    to the family (email): " in text
    assert "Alert: a deadline is near\n    to the advisers (email): sent, " in text
    assert "not sent: the reminder's moment passed while the service was down, meant for " in text
    assert re.search(r"\d{4} at \d{1,2}:\d{2}(am|pm)", text)
    # The old columns: recipient role, channel and status codes, the failure code.
    assert not re.search(r"\b(adviser|manager|provider|family)\s+(email|sms)\b", text)
    for code in ("queued", "skipped", "stale:"):
        assert code not in text
    # Scripts read the same notices as codes and ISO times.
    rows = json.loads(cli("notices", "list", "--json").stdout)
    assert {"request_acknowledged", "escalation_near"} <= {r["template"] for r in rows}
    assert all(ISO_TIME.match(r["not_before"]) for r in rows)
    assert {"family", "adviser"} <= {r["recipient"] for r in rows}


def test_a_case_its_steps_and_documents_name_people_not_actor_ids(cli: Run) -> None:
    shown = plain(cli, "case", "show", "MED-2026-0009")
    assert "the demo data loader via the helpline" in shown
    documents = plain(cli, "case", "documents", "MED-2026-0009")
    assert "by the demo data loader" in documents and "MC-2026-" in documents
    events = cli("case", "events", "MED-2026-0007").stdout
    # The names to type stay (they are what --set takes); every choice carries its words.
    assert "[agreement: Agreement reached | partial: Partial agreement | none: No agreement]" in (
        events
    )
    assert ISO_TIME.search(events) is None and ACTOR_ID.search(events) is None


def test_people_reports_and_the_rest_in_words(cli: Run) -> None:
    users = plain(cli, "user", "list")
    assert "Administrator" in users and "IAS adviser" in users
    assert "Provider staff (KIDS)" in users
    assert not re.search(r"^\S+\s+(admin|adviser|manager|provider)\b", users, re.M)
    cli("user", "token", "adviser@demo.casework", "--name", "LA system")
    assert "last used never" in plain(cli, "user", "tokens", "adviser@demo.casework")

    year = str(dt.datetime.now(dt.UTC).year)
    period = ("--from", f"{year}-01-01", "--to", f"{year}-12-31")
    timeliness = plain(cli, "report", "timeliness", *period)
    assert timeliness.startswith(f"Clocks due {dl.fmt(dt.date(int(year), 1, 1))} to ")
    flow = plain(cli, "report", "flow", *period)
    allocations = next(line for line in flow.splitlines() if line.startswith("Allocations to"))
    assert "KIDS 1" in allocations and "kids" not in allocations
    assert "1 January" in plain(cli, "report", "sen2", "--year", year)

    assert plain(cli, "tick").startswith("tick as at ")
    assert "skipping Friday 25 December 2026 (Christmas Day)" in plain(
        cli, "calendar", "working-days", "2026-12-20", "5"
    )
    plain(cli, "audit", "verify")
    plain(cli, "retention", "plan")
    plain(cli, "letters", "list")
    cli(
        "data-request",
        "record",
        "MED-2026-0001",
        "--kind",
        "erasure",
        "--requested-by",
        "the mother",
        "--received-on",
        dt.date.today().isoformat(),
        "--what",
        "delete our phone number",
    )
    assert "Erase personal data" in plain(cli, "data-request", "list")


def test_a_letter_to_post_reads_as_words(cli: Run) -> None:
    reference = cli(
        "case",
        "open",
        "--kind",
        "mediation",
        "--name",
        "Pat Post",
        "--channel",
        "helpline",
        "--phone",
        "0161 496 0999",
        "--channels",
        "post",
        "--address-line-1",
        "1 High Street",
        "--town",
        "Leeds",
        "--postcode",
        "LS1 1AA",
    ).stdout.strip()
    cli("tick")
    waiting = plain(cli, "letters", "list")
    found = re.search(
        rf"^  (\d+)  {reference}  .* to Pat Post, LS1 1AA  printed \w+day ", waiting, re.M
    )
    assert found, waiting
    listed = plain(cli, "notices", "list", "--case", reference)
    assert "to the family (letter by post): printed, waiting to be posted, since " in listed
    assert "posted on " in plain(cli, "letters", "posted", found.group(1))
    posted = plain(cli, "notices", "list", "--case", reference)
    assert re.search(r"\(letter by post\): posted, on \w+day \d+ \w+ \d{4}$", posted, re.M)


def test_refusals_at_the_terminal_are_words(cli: Run) -> None:
    status = cli("notices", "list", "--status", "late", expect=2).stderr
    assert "skipped (not sent)" in status and "to_post (printed, waiting to be posted)" in status
    role = cli("user", "add", "x@example.org", "--role", "boss", "--one-time-link", expect=2)
    assert "admin (Administrator)" in role.stderr
    year = cli("report", "sen2", "--year", "99999", expect=2)
    assert year.stderr.strip() == "error: --year 99999 is not a year; give four figures, e.g. 2026"
    at = cli("tick", "--at", "yesterday", expect=2).stderr
    assert "is not a date and time" in at and "ISO" not in at
    for args in (
        ("case", "show", "NOPE-1"),
        ("case", "advance", "MED-2026-0007", "fly"),
        ("case", "list", "--state", "nope"),
        ("deadlines", "--status", "nope"),
        ("case", "message", "MED-2026-0007", "--channel", "fax", "--text", "hi"),
    ):
        refused = cli(*args, expect=3 if args[1] == "show" else 2)
        assert refused.stderr.startswith("error: ") and refused.stderr.count("\n") == 1
        assert codes_in(refused.stderr) == [], refused.stderr


def test_every_status_a_notice_can_have_has_words() -> None:
    from casework.models import NoticeStatus

    assert set(words.NOTICE_STATUS_WORDS) == set(NoticeStatus)
    assert words.actor_words("demo:loader") == "the demo data loader"
    assert words.actor_words("robot:zed") == "someone"
