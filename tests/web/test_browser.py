"""Browser tests: the real app in Debian's chromium, with axe-core on every page visited.

The app runs under uvicorn in a background thread on a free 127.0.0.1 port, on a
fresh SQLite database (the browser tests run on SQLite only: the HTTP tests already
cover both databases, and what a browser adds, real forms, cookies, scripts and
rendering, does not depend on the database). Its clock is pinned (``app.state.clock``)
and moved forward by the test, so the dates shown are known in advance.
Users are created with ``casework.auth.create_user`` and sign in through the sign-in
form with their passwords, like people do.

Playwright (Python, sync API) drives ``/usr/bin/chromium`` headless; a browser is
never downloaded. Without the ``playwright`` package or chromium the module is
skipped with a message, except in CI (``CI=true``), where ``.ci/run`` installs both
and their absence fails the run. axe-core comes from npm (``tests/web/package.json``)
and is installed once with ``npm ci --prefix tests/web`` when missing.

Every page the journey visits is checked by axe-core against the WCAG 2.0, 2.1 and
2.2 A and AA rules, with the app's Content-Security-Policy left on; the page's own
script errors and CSP refusals fail the check too.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Engine

from casework import auth, cases
from casework import deadlines as dl
from casework.config import Settings, load_settings
from casework.db import make_engine, session_scope, upgrade
from casework.scheduler import run_once
from casework.web import assets
from casework.web.app import create_app
from tests.conftest import ADVISER, at
from tests.factories import advance, allocate_to, create_case
from tests.web.browser_support import (
    axe_violations,
    describe_violations,
    ensure_axe,
    in_ci,
    launch_chromium,
    live_server,
    missing_browser,
    serve_axe,
)
from tests.web.conftest import (
    CAST,
    PASSWORD,
    START,
    Clock,
    enrol_where_required,
    sign_in_code,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page, Response

pytestmark = pytest.mark.slow


def _cannot_run(reason: str) -> None:
    """Skip with the reason; in CI, where .ci/run installs everything, fail loudly instead."""
    if in_ci():
        pytest.fail(f"browser tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(f"browser tests skipped: {reason}", allow_module_level=True)


_MISSING = missing_browser()
if _MISSING is not None and not in_ci():
    _cannot_run(_MISSING)  # in CI the `live` fixture fails each test with the reason instead

# Pages the journey must have checked with axe (the test fails if one is dropped).
REQUIRED_CHECKS = {
    "sign-in",
    "dashboard",
    "intake",
    "intake with errors",
    "case",
    "allocate",
    "portal list",
    "portal case",
    "portal case with errors",
    "manager",
    "case with a message",
}
DECISION_DATE = dt.date(2026, 11, 2)


# --- The live app -------------------------------------------------------------------------


@dataclass
class Live:
    base_url: str
    settings: Settings
    engine: Engine
    clock: Clock
    checked: set[str] = field(default_factory=set)

    def tick(self, minutes: int = 5) -> None:
        """Time passes between steps, as it does for people."""
        self.clock.now += dt.timedelta(minutes=minutes)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    if _MISSING is not None:
        _cannot_run(_MISSING)
    for problem in (ensure_axe(), assets.ensure_assets(quiet=True)):
        if problem:
            _cannot_run(problem)
    tmp: Path = tmp_path_factory.mktemp("browser")
    settings = load_settings(
        environment="test", data_dir=tmp, database_url=f"sqlite:///{tmp}/casework.db"
    )
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    with session_scope(engine) as session:
        cases.sync_providers(session, settings)
        made = [
            auth.create_user(
                session,
                email=email,
                role=role,
                now=START,
                password=PASSWORD,
                name=key.replace("_", " ").title(),
                provider=provider,
            )
            for key, (email, role, provider) in CAST.items()
        ]
        enrol_where_required(session, settings, made, START)
    clock = Clock(START)
    app = create_app(settings, engine)
    app.state.clock = clock
    try:
        with live_server(app) as base_url:
            yield Live(base_url, settings, engine, clock)
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def browser(live: Live) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


# --- A person at a browser ----------------------------------------------------------------


class Person:
    """One person's browser context (their own cookies), with axe on every page checked."""

    def __init__(self, live: Live, browser: Browser, who: str) -> None:
        self.live = live
        self.email = CAST[who][0]
        self.context = browser.new_context(
            base_url=live.base_url, viewport={"width": 1280, "height": 900}
        )
        self.context.set_default_timeout(10_000)
        serve_axe(self.context, live.base_url)
        self.problems: list[str] = []
        self.page = self.new_tab()

    def new_tab(self) -> Page:
        page = self.context.new_page()
        page.on("console", lambda message: self._console(page, message))
        page.on("pageerror", lambda exc: self.problems.append(f"script error: {exc}"))
        return page

    def _console(self, page: Page, message: ConsoleMessage) -> None:
        """Script errors and CSP refusals are problems; the page's own 4xx status is not."""
        if message.type != "error":
            return
        where = message.location.get("url", "")
        if message.text.startswith("Failed to load resource") and where == page.url:
            return  # the browser logs a 404, 409 or 422 page itself as a failed load
        self.problems.append(f"console: {message.text} ({where})")

    def sign_in(self) -> Page:
        page = self.page
        page.goto("/sign-in")
        if "sign-in" not in self.live.checked:  # the same page for everyone: checked once
            self.check(page, "sign-in")
        # GOV.UK Frontend's JavaScript ran under the CSP: the password toggle is shown.
        assert "govuk-frontend-supported" in (page.locator("body").get_attribute("class") or "")
        assert page.get_by_role("button", name="Show password").is_visible()
        page.get_by_label("Email address").fill(self.email)
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        with page.expect_navigation():
            page.get_by_role("button", name="Sign in", exact=True).click()
        if "/sign-in/code" in page.url:  # two-factor sign-in: the code from their "phone"
            if "sign-in code" not in self.live.checked:
                self.check(page, "sign-in code")
            page.get_by_label("Code").fill(
                sign_in_code(self.live.engine, self.email, self.live.clock)
            )
            with page.expect_navigation():
                page.get_by_role("button", name="Continue", exact=True).click()
        assert page.get_by_role("button", name=re.compile("^Sign out")).is_visible()
        return page

    def check(self, page: Page, name: str) -> None:
        """axe-core finds no WCAG A/AA violation, and the page ran without script errors.

        Every <details> on the page is left open afterwards.
        """
        page.wait_for_load_state("load")
        # Open every <details> (the event forms) so axe sees the fields inside them too.
        page.evaluate("() => document.querySelectorAll('details').forEach(d => { d.open = true })")
        violations = axe_violations(page, self.live.base_url)
        assert not violations, (
            f"axe-core found accessibility violations on the {name} page ({page.url}):\n"
            + describe_violations(violations)
        )
        problems, self.problems[:] = list(self.problems), []
        assert not problems, f"problems on the {name} page ({page.url}): {problems}"
        self.live.checked.add(name)

    def close(self) -> None:
        self.context.close()


class People:
    """The people in a test, each signed in through their own browser context on first use."""

    def __init__(self, live: Live, browser: Browser) -> None:
        self.live = live
        self.browser = browser
        self.opened: dict[str, Person] = {}

    def __getitem__(self, who: str) -> Person:
        if who not in self.opened:
            self.opened[who] = Person(self.live, self.browser, who)
        return self.opened[who]


@pytest.fixture
def people(live: Live, browser: Browser) -> Iterator[People]:
    cast = People(live, browser)
    yield cast
    for person in cast.opened.values():
        person.close()


def submit(page: Page, form_scope: str) -> Response | None:
    """Press the submit button of the form inside ``form_scope``; the response is returned."""
    with page.expect_navigation() as navigation:
        page.locator(f"{form_scope} form button[type=submit]").click()
    return navigation.value


def open_event(page: Page, event: str) -> str:
    """Open the <details> holding an event's form; return its CSS scope."""
    scope = f"#event-{event}"
    if page.locator(scope).get_attribute("open") is None:  # a check may have opened it
        page.locator(f"{scope} > summary").click()
    assert page.locator(scope).get_attribute("open") is not None
    return scope


def fill_date(page: Page, field_id: str, day: dt.date) -> None:
    page.locator(f"#{field_id}-day").fill(str(day.day))
    page.locator(f"#{field_id}-month").fill(str(day.month))
    page.locator(f"#{field_id}-year").fill(str(day.year))


def reference_in(url: str) -> str:
    found = re.search(r"/cases/([A-Z]+-[\d-]+)", url)
    assert found, f"no case reference in {url}"
    return found.group(1)


# --- The journey ----------------------------------------------------------------------------


def test_a_case_from_intake_to_certificate_and_the_appeal_deadline(
    live: Live, people: People
) -> None:
    adviser = people["adviser"]
    page = adviser.sign_in()
    assert page.url == live.base_url + "/"
    adviser.check(page, "dashboard")

    # Intake: first with a mistake (an email request without a phone number) ...
    page.get_by_role("link", name="New case").click()
    adviser.check(page, "intake")
    page.get_by_role("radio", name="Mediation", exact=True).check()
    page.get_by_role("radio", name="Email", exact=True).check()
    page.get_by_label("Parent's or young person's name").fill("Sam Parent")
    page.get_by_label("Email address (optional)").fill("sam.parent@example.org")
    fill_date(page, "decision_date", DECISION_DATE)
    page.get_by_label("What did the LA decide?").select_option("refuse_assessment")
    page.get_by_label("Summary of the disagreement (optional)").fill("LA refused an assessment.")
    response = submit(page, "main")
    assert response is not None and response.status == 422
    summary = page.locator(".govuk-error-summary")
    assert summary.is_visible() and "There is a problem" in summary.inner_text()
    assert page.locator("#phone-error").is_visible()
    assert page.get_by_label("Parent's or young person's name").input_value() == "Sam Parent"
    adviser.check(page, "intake with errors")
    # ... then by the helpline, with a valid phone number.
    page.get_by_role("radio", name="Helpline", exact=True).check()
    page.get_by_label("Telephone number").fill("07911 123456")
    response = submit(page, "main")
    assert response is not None and response.status == 200
    # Check your answers, then open the case.
    assert page.locator("h1").inner_text() == "Check the details before opening the case"
    with page.expect_navigation():
        page.get_by_role("button", name="Open the case").click()
    reference = reference_in(page.url)
    assert "Case opened" in page.locator(".govuk-notification-banner").inner_text()
    assert "Requested" in page.locator("h1").inner_text()
    adviser.check(page, "case")

    # The adviser records the advice given, then allocates a provider.
    live.tick()
    scope = open_event(page, "advise")
    page.locator(f"{scope} textarea").fill("Explained mediation and the appeal window.")
    submit(page, scope)
    assert "Advised" in page.locator("h1").inner_text()
    adviser.check(page, "case")
    page.get_by_role("button", name="Allocate a provider").click()
    assert page.url.endswith(f"/cases/{reference}/allocate")
    adviser.check(page, "allocate")
    page.get_by_label("Provider", exact=True).select_option("solution-talk")
    page.get_by_label("The family's preferred provider (optional)").select_option("solution-talk")
    page.get_by_label("Note for the provider (optional)").fill("Weekday mornings suit the family.")
    page.get_by_label("Why this provider (if not the suggestion)").fill(
        "The family asked for them."
    )
    submit(page, "main")
    assert page.url.endswith(f"/cases/{reference}?done=allocated")
    assert "Solution Talk" in page.locator("#allocation + dl").inner_text()
    adviser.check(page, "case")

    # The provider signs in, finds the case in the portal and accepts it.
    live.tick()
    provider = people["provider_a"]
    portal = provider.sign_in()
    assert portal.url == live.base_url + "/portal"
    provider.check(portal, "portal list")
    portal.get_by_role("link", name=reference).click()
    assert "Will you take this case?" in portal.locator("main").inner_text()
    provider.check(portal, "portal case")
    portal.get_by_label("Accept the case").check()
    submit(portal, "main")
    assert "Allocation accepted." in portal.locator(".govuk-notification-banner").inner_text()
    provider.check(portal, "portal case")

    # The adviser records that the family chose mediation (the LA told today).
    live.tick()
    page.reload()
    scope = open_event(page, "choose_mediation")
    submit(page, scope)
    assert "Mediating" in page.locator("h1").inner_text()
    adviser.check(page, "case")

    # The provider schedules the meeting for later today, then records it held ...
    live.tick()
    portal.reload()
    scope = open_event(portal, "schedule_meeting")
    fill_date(portal, "schedule_meeting-meeting_on", START.date())
    portal.locator("#schedule_meeting-meeting_time").fill("11:00")
    submit(portal, scope)
    assert "Schedule meeting: recorded." in portal.locator("main").inner_text()
    provider.check(portal, "portal case")
    live.tick(minutes=90)
    scope = open_event(portal, "record_meeting")
    portal.locator(scope).get_by_label("Agreement reached").check()
    response = submit(portal, scope)  # an agreement must be written down: refused
    assert response is not None and response.status == 422
    assert portal.locator(".govuk-error-summary a[href='#record_meeting-agreement']").is_visible()
    assert portal.locator("#record_meeting-agreement-error").is_visible()
    provider.check(portal, "portal case with errors")
    portal.locator("#record_meeting-agreement").fill(
        "The LA will carry out an EHC needs assessment, starting in December."
    )
    submit(portal, scope)
    assert "Record meeting held: recorded." in portal.locator("main").inner_text()
    provider.check(portal, "portal case")
    # ... and issues the certificate (dated today: the default).
    live.tick()
    scope = open_event(portal, "issue_certificate")
    submit(portal, scope)
    assert "Certificate issued" in portal.locator("h1").inner_text()
    provider.check(portal, "portal case")

    # The scheduler runs: the outbox sends what the steps queued.
    live.tick()
    result = run_once(live.engine, live.settings, live.clock.now)
    assert result["dispatch"]["sent"] > 0, result

    # The adviser sees the appeal deadline, how it was worked out, and the notices.
    page.reload()
    appeal = dl.appeal_clock(DECISION_DATE, START.astimezone(dl.LONDON).date())
    deadlines = page.locator("#deadlines + .casework-table-scroll table")
    row = deadlines.locator("tr", has_text="Appeal reaches the Tribunal")
    assert row.count() == 1
    row_text = " ".join(row.inner_text().split())
    assert appeal.explanation in row_text and dl.fmt(appeal.due) in row_text, row_text
    assert "On track" in row_text
    details = page.locator("dl.casework-facts").last.inner_text()
    assert f"Appeal deadline\n{dl.fmt(appeal.due)}, 5pm" in details
    timeline = page.locator("#timeline + ol")
    notices = timeline.locator("li", has_text="Notice:")
    assert notices.count() > 0
    sent = notices.filter(has=page.locator(".govuk-tag", has_text=re.compile("^Sent$")))
    assert sent.count() > 0, timeline.inner_text()
    assert timeline.locator("h3", has_text="Issue certificate").count() == 1
    assert timeline.locator("h3", has_text="Record meeting held").count() == 1
    adviser.check(page, "case")

    # The adviser sends the family a one-off email; the timeline shows what it says.
    live.tick()
    scope = open_event(page, "message")
    page.locator(f"{scope} input[type=radio][value=email]").check()
    page.locator(f"{scope} textarea").fill("We will ring you on Monday about the certificate.")
    submit(page, scope)
    assert (
        "Message to the family written" in page.locator(".govuk-notification-banner").inner_text()
    )
    message = page.locator("#timeline + ol li", has_text="Notice: Message from the adviser")
    assert message.count() == 1
    # The text as it will be sent, collapsed in a details component until asked for.
    message.locator("summary").click()
    text = message.locator(".casework-notice-text")
    assert text.is_visible()
    assert "We will ring you on Monday about the certificate." in text.inner_text()
    adviser.check(page, "case with a message")

    # A manager's page of what is late or at risk.
    manager = people["manager"]
    board = manager.sign_in()
    board.get_by_role("link", name="Late and at risk").click()
    assert board.locator("h1").inner_text() == "Late and at risk"
    manager.check(board, "manager")

    assert live.checked >= REQUIRED_CHECKS, REQUIRED_CHECKS - live.checked


def test_the_axe_check_is_live(live: Live, people: People) -> None:
    """A page broken on purpose is caught, so a clean result above means something."""
    visitor = people["adviser"]
    page = visitor.page
    page.goto("/sign-in")
    page.evaluate("() => document.querySelector('label[for=email]').remove()")
    violations = axe_violations(page, live.base_url)
    assert "label" in {v["id"] for v in violations}, violations


def test_a_stale_form_in_a_second_tab_gets_the_conflict_message(live: Live, people: People) -> None:
    with session_scope(live.engine) as session:
        case = create_case(session, live.settings, name="Robin Stale")
    adviser = people["adviser"]
    first = adviser.sign_in()
    first.goto(f"/cases/{case.reference}")
    second = adviser.new_tab()
    second.goto(f"/cases/{case.reference}")

    # The first tab records the advice; the second tab's form still has the old version.
    scope = open_event(first, "advise")
    submit(first, scope)
    assert "Advised" in first.locator("h1").inner_text()
    scope = open_event(second, "advise")
    response = submit(second, scope)

    assert response is not None and response.status == 409
    banner = second.locator(".govuk-notification-banner").inner_text()
    assert "Someone else changed this case" in banner
    assert "Nothing you entered was saved" in banner
    assert "Advised" in second.locator("h1").inner_text()  # the page shows the case as it is now
    adviser.check(second, "case with a conflict")


def test_provider_staff_get_404_for_another_providers_case(live: Live, people: People) -> None:
    with session_scope(live.engine) as session:
        case = create_case(session, live.settings, name="Alex Elsewhere")
        advance(session, live.settings, case, "advise")
        allocate_to(
            session,
            case.reference,
            "solution-talk",
            now=at("2026-11-10", "11:00"),
            actor=ADVISER,
            settings=live.settings,
        )
    other = people["provider_b"]  # Collis Mediation: not their case
    page = other.sign_in()
    assert case.reference not in page.locator("main").inner_text()
    for url in (f"/portal/cases/{case.reference}", f"/cases/{case.reference}"):
        response = page.goto(url)
        assert response is not None and response.status == 404, url
        assert page.locator("h1").inner_text() == "Page not found"
        assert case.reference not in page.locator("main").inner_text()
        other.check(page, "not found")


def _narrow(person: Person) -> Page:
    """A phone-width window (390 CSS pixels): GOV.UK pages must not scroll sideways."""
    person.page.set_viewport_size({"width": 390, "height": 844})
    return person.page


def _no_sideways_scroll(page: Page) -> None:
    wide = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert wide <= 0, f"{page.url} scrolls sideways by {wide}px at 390px"


def test_intake_check_a_possible_duplicate_a_confirmed_withdrawal_and_a_managers_reopen(
    live: Live, people: People
) -> None:
    """At phone width: the adviser checks the answers (warned of an open case with the same
    number), withdraws the case after seeing which clocks stop, and a manager reopens it."""
    with session_scope(live.engine) as session:
        earlier = cases.open_case(
            session,
            cases.Intake(
                kind="mediation",
                name="Alex Earlier",
                phone="07911 222333",
                channel="helpline",
                decision_date=DECISION_DATE,
            ),
            now=live.clock.now,
            actor=cases.Actor(id="user:" + CAST["adviser"][0], role="adviser", channel="web"),
            settings=live.settings,
        ).reference

    adviser = people["adviser"]
    page = adviser.sign_in()
    page = _narrow(adviser)
    page.goto("/cases/new")
    page.get_by_label("Parent's or young person's name").fill("Alex Again")
    page.get_by_label("Telephone number").fill("+44 7911 222333")
    fill_date(page, "decision_date", DECISION_DATE)
    response = submit(page, "main")
    assert response is not None and response.status == 200
    assert page.locator("h1").inner_text() == "Check the details before opening the case"
    warning = page.locator("#possible-duplicate")
    assert warning.is_visible() and "open case" in warning.inner_text()
    assert page.get_by_role("link", name=earlier).is_visible()
    _no_sideways_scroll(page)
    adviser.check(page, "intake check, possible duplicate, 390px")

    # Change the name: back to the form with what was typed, then check again.
    with page.expect_navigation():
        page.get_by_role("button", name="Change name").click()
    assert page.get_by_label("Telephone number").input_value() == "+44 7911 222333"
    page.get_by_label("Parent's or young person's name").fill("Alex Second")
    submit(page, "main")
    assert "Alex Second" in page.locator(".govuk-summary-list").inner_text()
    with page.expect_navigation():
        page.get_by_role("button", name="Open the case").click()
    reference = reference_in(page.url)
    assert reference != earlier and "Case opened" in page.locator("main").inner_text()

    # Withdraw: first the page of what will stop, then yes.
    live.tick()
    scope = open_event(page, "withdraw")
    page.locator(f"{scope} textarea").fill("The family rang twice; this is the same request.")
    response = submit(page, scope)
    assert response is not None and response.status == 200
    assert "goes from requested to withdrawn" in page.locator("main").inner_text()
    stops = page.locator(".govuk-summary-list__row", has_text="Clocks that stop").inner_text()
    assert "Family contacts the mediation adviser" in stops
    _no_sideways_scroll(page)
    adviser.check(page, "confirm withdrawal, 390px")
    with page.expect_navigation():
        page.get_by_role("button", name="Yes, withdraw").click()
    assert "Withdrawn" in page.locator("h1").inner_text()
    assert page.locator("#event-reopen").count() == 0, "advisers are not offered a reopen"

    # A manager reopens it, with a reason: back to Requested, the family's clock running.
    live.tick()
    manager = people["manager"]
    board = manager.sign_in()
    board = _narrow(manager)
    board.goto(f"/cases/{reference}")
    manager.check(board, "withdrawn case, manager, 390px")
    scope = "#event-reopen"
    board.locator("#reopen-reason").fill("Withdrawn on the wrong case: the earlier one was meant.")
    submit(board, scope)
    assert "Case reopened" in board.locator(".govuk-notification-banner").inner_text()
    assert "Requested" in board.locator("h1").inner_text()
    row = board.locator(
        "#deadlines + .casework-table-scroll table tr",
        has_text="Family contacts the mediation adviser",
    )
    assert row.filter(has_text="On track").count() == 1, row.all_inner_texts()
    _no_sideways_scroll(board)
    manager.check(board, "reopened case, 390px")


# --- The administrator and two-factor sign-in -------------------------------------------------


def _fits_a_phone(person: Person, page: Page, name: str) -> None:
    """At 390 px wide: axe-clean and nothing makes the page scroll sideways."""
    page.set_viewport_size({"width": 390, "height": 844})
    try:
        page.wait_for_load_state("load")
        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"the {name} page scrolls sideways by {overflow}px at 390px"
        person.check(page, f"{name} at 390px")
    finally:
        page.set_viewport_size({"width": 1280, "height": 900})


def test_an_admin_adds_a_user_issues_and_revokes_a_token_and_disables_them(
    live: Live, people: People
) -> None:
    admin = people["admin"]
    page = admin.sign_in()
    page.get_by_role("link", name="Users").click()
    assert page.locator("h1").inner_text() == "Users"
    admin.check(page, "users")
    _fits_a_phone(admin, page, "users")

    page.get_by_role("link", name="Add a user").click()
    admin.check(page, "add a user")
    page.get_by_label("Email address").fill("casey.new@ias.example.org")
    page.get_by_label("Name").fill("Casey New")
    page.get_by_role("radio", name="IAS adviser", exact=True).check()
    submit(page, "main")
    assert "User added" in page.locator(".govuk-notification-banner").inner_text()
    assert "/set-password/" in page.locator("#shown-once").inner_text()
    admin.check(page, "user")
    _fits_a_phone(admin, page, "user")

    page.get_by_label("Issue a new token: what is it for?").fill("LA case system")
    with page.expect_navigation():
        page.get_by_role("button", name="Issue token").click()
    token = page.locator("#shown-once").inner_text().strip()
    assert token.startswith("cw_")
    admin.check(page, "user with a new token")
    with page.expect_navigation():
        page.get_by_role("button", name=re.compile("^Revoke")).click()
    assert "API token revoked" in page.locator(".govuk-notification-banner").inner_text()
    assert token not in page.content()

    page.get_by_role("link", name="Disable user").click()
    assert page.locator("h1").inner_text() == "Disable Casey New?"
    admin.check(page, "disable a user")
    _fits_a_phone(admin, page, "disable a user")
    with page.expect_navigation():
        page.get_by_role("button", name="Disable user").click()
    assert "User disabled" in page.locator(".govuk-notification-banner").inner_text()
    assert "Disabled" in page.locator("dl").first.inner_text()
    admin.check(page, "user")


def test_a_new_manager_enrols_and_signs_in_with_a_code(
    live: Live, browser: Browser, people: People
) -> None:
    import pyotp

    email = "new.manager@ias.example.org"
    with session_scope(live.engine) as session:
        auth.create_user(
            session, email=email, role="manager", now=START, password=PASSWORD, name="Nia"
        )
    nia = Person(live, browser, "manager")
    nia.email = email
    try:
        page = nia.page
        page.goto("/sign-in")
        page.get_by_label("Email address").fill(email)
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        with page.expect_navigation():
            page.get_by_role("button", name="Sign in", exact=True).click()
        assert page.url.endswith("/account/two-factor")
        assert page.get_by_role("img", name="QR code for your authenticator app").is_visible()
        nia.check(page, "two-factor set-up")
        _fits_a_phone(nia, page, "two-factor set-up")
        # The check left "I cannot scan the QR code" open: the key to type is there.
        secret = (page.locator("#secret").text_content() or "").replace(" ", "").strip()
        page.get_by_label("Code from the app").fill(pyotp.TOTP(secret).at(live.clock.now))
        with page.expect_navigation():
            page.get_by_role("button", name="Turn on two-factor sign-in").click()
        codes = page.locator("#recovery-codes li").all_inner_texts()
        assert len(codes) == 10
        nia.check(page, "recovery codes")
        _fits_a_phone(nia, page, "recovery codes")
        with page.expect_navigation():
            page.get_by_role("link", name="I have saved my recovery codes").click()
        with page.expect_navigation():
            page.get_by_role("button", name=re.compile("^Sign out")).click()

        live.tick()  # a minute later: a new code
        page.get_by_label("Email address").fill(email)
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        with page.expect_navigation():
            page.get_by_role("button", name="Sign in", exact=True).click()
        assert "/sign-in/code" in page.url
        nia.check(page, "sign-in code")
        _fits_a_phone(nia, page, "sign-in code")
        page.get_by_label("Code").fill(pyotp.TOTP(secret).at(live.clock.now))
        with page.expect_navigation():
            page.get_by_role("button", name="Continue").click()
        page.get_by_role("link", name="Late and at risk").click()
        assert page.locator("h1").inner_text() == "Late and at risk"
    finally:
        nia.close()
