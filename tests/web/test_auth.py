"""Sign-in, sign-out, throttling, session expiry, CSRF on sign-in, cookies and headers."""

from __future__ import annotations

import datetime as dt
import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select
from sqlmodel import col
from typer.testing import CliRunner

from casework import auth
from casework.cli import users as cli_users
from casework.config import load_settings
from casework.models import ApiToken, User, UserSession
from casework.web.app import create_app
from casework.web.deps import SESSION_COOKIE
from casework.web.security import SIGN_IN_CSRF_COOKIE
from tests.passwords import install_counting_hasher
from tests.web.conftest import CAST, PASSWORD, START, Browser, Web, csrf_in


def sign_in(
    browser: Browser, email: str, password: str = PASSWORD, next_url: str = ""
) -> tuple[int, str]:
    page = browser.get("/sign-in")
    assert page.status_code == 200
    response = browser.post(
        "/sign-in",
        {"email": email, "password": password, "next": next_url},
        csrf=csrf_in(page.text),
    )
    return response.status_code, response.headers.get("location", "")


def test_sign_in_page_has_a_csrf_field_and_cookie(web: Web) -> None:
    browser = web.browser()
    page = browser.get("/sign-in")
    assert page.status_code == 200
    assert "Sign in" in page.text
    assert browser.client.cookies.get(SIGN_IN_CSRF_COOKIE) == csrf_in(page.text)


def test_an_adviser_signs_in_and_reaches_the_dashboard(web: Web) -> None:
    browser = web.browser()
    status, location = sign_in(browser, CAST["adviser"][0])
    assert (status, location) == (303, "/")
    assert browser.get("/").status_code == 200


def test_the_session_cookie_is_httponly_and_lax_and_not_secure_on_http(web: Web) -> None:
    browser = web.browser()
    page = browser.get("/sign-in")
    response = browser.post(
        "/sign-in", {"email": CAST["adviser"][0], "password": PASSWORD}, csrf=csrf_in(page.text)
    )
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE)
    )
    assert "HttpOnly" in cookie
    assert "samesite=lax" in cookie.lower()
    assert "Secure" not in cookie  # local http://127.0.0.1 must work


def test_the_session_cookie_is_secure_when_served_over_https(web: Web) -> None:
    settings = load_settings(environment="test", public_url="https://casework.example.org")
    app = create_app(settings, web.engine)
    app.state.clock = web.clock
    browser = Browser(app, base_url="https://testserver")
    page = browser.get("/sign-in")
    assert "Secure" in page.headers["set-cookie"]
    response = browser.post(
        "/sign-in", {"email": CAST["adviser"][0], "password": PASSWORD}, csrf=csrf_in(page.text)
    )
    assert response.status_code == 303
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE)
    )
    assert "Secure" in cookie and "HttpOnly" in cookie


def test_provider_staff_land_in_the_portal(web: Web) -> None:
    status, location = sign_in(web.browser(), CAST["provider_a"][0])
    assert (status, location) == (303, "/portal")


def test_next_is_followed_but_only_within_the_site(web: Web) -> None:
    assert sign_in(web.browser(), CAST["adviser"][0], next_url="/cases/new") == (303, "/cases/new")
    assert sign_in(web.browser(), CAST["adviser"][0], next_url="//evil.example/x") == (303, "/")
    assert sign_in(web.browser(), CAST["adviser"][0], next_url="https://evil.example") == (
        303,
        "/",
    )


def test_a_wrong_password_is_refused_without_saying_which_part_was_wrong(web: Web) -> None:
    browser = web.browser()
    page = browser.get("/sign-in")
    response = browser.post(
        "/sign-in",
        {"email": CAST["adviser"][0], "password": "not the password"},
        csrf=csrf_in(page.text),
    )
    assert response.status_code == 401
    assert "Enter a correct email address and password" in response.text
    assert 'value="alice.adviser@ias.example.org"' in response.text  # kept for a retry
    assert SESSION_COOKIE not in browser.client.cookies


def test_an_unknown_email_gets_the_same_message(web: Web) -> None:
    browser = web.browser()
    page = browser.get("/sign-in")
    response = browser.post(
        "/sign-in", {"email": "nobody@example.org", "password": "x" * 12}, csrf=csrf_in(page.text)
    )
    assert response.status_code == 401
    assert "Enter a correct email address and password" in response.text


def test_empty_fields_are_named(web: Web) -> None:
    browser = web.browser()
    page = browser.get("/sign-in")
    response = browser.post("/sign-in", {"email": "", "password": ""}, csrf=csrf_in(page.text))
    assert response.status_code == 422
    assert 'href="#email"' in response.text and "Enter your password" in response.text


@pytest.mark.parametrize("token", [None, "", "forged"])
def test_sign_in_without_the_csrf_token_is_refused(web: Web, token: str | None) -> None:
    browser = web.browser()
    browser.get("/sign-in")
    response = browser.post(
        "/sign-in", {"email": CAST["adviser"][0], "password": PASSWORD}, csrf=token
    )
    assert response.status_code == 403
    assert "nothing was changed" in response.text
    assert SESSION_COOKIE not in browser.client.cookies


def test_five_failures_pause_the_account_for_15_minutes(web: Web) -> None:
    email = CAST["adviser"][0]
    browser = web.browser()
    for _ in range(5):
        assert sign_in(browser, email, "wrong password!")[0] == 401
    page = browser.get("/sign-in")
    paused = browser.post(
        "/sign-in", {"email": email, "password": PASSWORD}, csrf=csrf_in(page.text)
    )
    assert paused.status_code == 401  # the right password too: nothing is checked now
    assert "signing in is paused for 15 minutes" in paused.text
    assert SESSION_COOKIE not in browser.client.cookies
    web.clock.now = START + dt.timedelta(minutes=16)
    assert sign_in(browser, email) == (303, "/")


def _refusal(browser: Browser, email: str, password: str) -> tuple[int, str]:
    """Status and page of a refused sign-in, the typed email blanked out."""
    page = browser.get("/sign-in")
    response = browser.post(
        "/sign-in", {"email": email, "password": password}, csrf=csrf_in(page.text)
    )
    return response.status_code, response.text.replace(email, "EMAIL")


def test_unknown_disabled_paused_and_wrong_are_answered_alike(web: Web) -> None:
    """Nothing in the answer tells a guesser whether an email exists or is paused."""
    paused_email, disabled_email = CAST["manager"][0], CAST["admin"][0]
    for _ in range(auth.MAX_FAILED_LOGINS):
        sign_in(web.browser(), paused_email, "wrong password!")
    with web.session() as s:
        user = s.execute(select(User).where(col(User.email) == disabled_email)).scalar_one()
        auth.disable_user(s, user, now=START)
    browser = web.browser()
    answers = {
        "wrong": _refusal(browser, CAST["adviser"][0], "wrong password!"),
        "unknown": _refusal(browser, "nobody@ias.example.org", PASSWORD),
        "paused, right password": _refusal(browser, paused_email, PASSWORD),
        "disabled, right password": _refusal(browser, disabled_email, PASSWORD),
    }
    assert answers["wrong"][0] == 401
    assert auth.SIGN_IN_REFUSED in answers["wrong"][1]
    for why, answer in answers.items():
        assert answer == answers["wrong"], why


def test_forty_parallel_wrong_passwords_pause_the_account(
    web: Web, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """Parallel guesses get no more tries than serial ones: the count is one UPDATE."""
    hasher = install_counting_hasher(monkeypatch, request)
    email = CAST["adviser"][0]
    with web.session() as s:
        user = s.execute(select(User).where(col(User.email) == email)).scalar_one()
        user.password_hash = real_hash = hasher.hash(PASSWORD)
        s.commit()
    pages = []
    for _ in range(40):
        browser = web.browser()
        pages.append((browser, csrf_in(browser.get("/sign-in").text)))
    start = threading.Barrier(len(pages))

    def guess(browser: Browser, csrf: str) -> int:
        start.wait()
        response = browser.post(
            "/sign-in", {"email": email, "password": "a wrong guess!"}, csrf=csrf
        )
        return response.status_code

    with ThreadPoolExecutor(len(pages)) as pool:
        statuses = list(pool.map(lambda bc: guess(*bc), pages))
    assert statuses == [401] * 40
    assert hasher.checked.count(real_hash) == auth.MAX_FAILED_LOGINS
    assert len(hasher.checked) == 40  # every refusal did a check: the same work
    with web.session() as s:
        user = s.execute(select(User).where(col(User.email) == email)).scalar_one()
        assert user.failed_logins == auth.MAX_FAILED_LOGINS
        assert user.locked_until == START + auth.LOCKOUT
    assert sign_in(web.browser(), email)[0] == 401  # the right password waits too


def test_an_idle_session_expires_and_sends_you_to_sign_in(web: Web) -> None:
    browser = web.browser("adviser")
    assert browser.get("/").status_code == 200
    web.clock.now = START + auth.SESSION_IDLE + dt.timedelta(minutes=1)
    response = browser.get("/cases/new")
    assert response.status_code == 303
    assert response.headers["location"] == "/sign-in?next=%2Fcases%2Fnew&expired=1"
    page = browser.get(response.headers["location"])
    assert "Your session has ended" in page.text


def test_a_locked_database_skips_sliding_the_session_but_answers_the_page(web: Web) -> None:
    if web.engine.dialect.name != "sqlite":
        pytest.skip("one writer at a time is SQLite's lock; PostgreSQL locks rows")
    browser = web.browser("adviser")
    web.clock.now = START + dt.timedelta(minutes=5)  # the idle expiry is due to slide
    with web.engine.connect().execution_options(claim=True) as other:
        other.execute(select(User.id)).all()  # BEGIN IMMEDIATE: another writer holds it
        page = browser.get("/")
        other.rollback()
    assert page.status_code == 200
    with web.session() as s:
        row = s.execute(select(UserSession)).scalar_one()
        assert row.ended_at is None
        assert row.last_seen_at == START  # the slide was skipped, not half-written
        assert row.expires_at == START + auth.SESSION_IDLE
    assert browser.get("/").status_code == 200  # still signed in, and now it slides
    with web.session() as s:
        row = s.execute(select(UserSession)).scalar_one()
        assert row.last_seen_at == START + dt.timedelta(minutes=5)


def test_a_session_ends_after_12_hours_even_when_active(web: Web) -> None:
    browser = web.browser("adviser")
    for hours in range(1, 12):
        web.clock.now = START + dt.timedelta(hours=hours)
        assert browser.get("/").status_code == 200
    web.clock.now = START + auth.SESSION_ABSOLUTE + dt.timedelta(minutes=1)
    assert browser.get("/").status_code == 303


def test_not_signed_in_goes_to_sign_in_with_next(web: Web) -> None:
    response = web.browser().get("/?state=advised")
    assert response.status_code == 303
    assert response.headers["location"] == "/sign-in?next=%2F%3Fstate%3Dadvised"


def test_a_post_without_a_session_goes_to_sign_in(web: Web) -> None:
    response = web.browser().post("/cases/new", {"name": "x"}, csrf="anything")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/sign-in")


def test_sign_out_ends_the_session_on_the_server(web: Web) -> None:
    browser = web.browser("adviser")
    token = browser.client.cookies.get(SESSION_COOKIE)
    response = browser.post("/sign-out")
    assert response.status_code == 303
    assert response.headers["location"] == "/sign-in?signed_out=1"
    with web.session() as s:
        row = s.execute(
            select(UserSession).where(col(UserSession.token_hash) == auth.token_hash(token or ""))
        ).scalar_one()
        assert row.ended_at is not None
    # Replaying the old cookie does not get back in.
    replay = Browser(web.app, token)
    assert replay.get("/").status_code == 303
    assert "You have signed out" in web.browser().get("/sign-in?signed_out=1").text


@pytest.mark.parametrize("token", [None, "forged"])
def test_sign_out_needs_the_csrf_token(web: Web, token: str | None) -> None:
    browser = web.browser("adviser")
    assert browser.post("/sign-out", csrf=token).status_code == 403
    assert browser.get("/").status_code == 200  # still signed in


def test_every_page_carries_the_security_headers(web: Web) -> None:
    for browser, url in [
        (web.browser(), "/sign-in"),
        (web.browser("adviser"), "/"),
        (web.browser(), "/health"),
        (web.browser(), "/static/casework.css"),
    ]:
        response = browser.get(url)
        assert response.status_code == 200, url
        headers = response.headers
        csp = headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "same-origin"
    assert web.browser("adviser").get("/").headers["cache-control"] == "no-store"


def test_pages_have_no_inline_scripts_or_styles(web: Web) -> None:
    for browser, url in [(web.browser(), "/sign-in"), (web.browser("adviser"), "/cases/new")]:
        html = browser.get(url).text
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), url
        assert " style=" not in html, url


def test_a_one_time_link_sets_the_password_once(web: Web) -> None:
    with web.session() as s:
        user = auth.create_user(s, email="new.adviser@ias.example.org", role="adviser", now=START)
        link = auth.set_password_url(web.settings, user)
    path = link.removeprefix(web.settings.public_url.rstrip("/"))
    browser = web.browser()
    page = browser.get(path)
    assert page.status_code == 200 and "new.adviser@ias.example.org" in page.text
    csrf = csrf_in(page.text)
    assert (
        browser.post(path, {"password": "x" * 12, "confirm": "y" * 12}, csrf=csrf).status_code
        == 422
    )
    assert (
        browser.post(path, {"password": "short", "confirm": "short"}, csrf=csrf).status_code == 422
    )
    assert (
        browser.post(path, {"password": "p" * 14, "confirm": "p" * 14}, csrf=None).status_code
        == 403
    )
    done = browser.post(path, {"password": "p" * 14, "confirm": "p" * 14}, csrf=csrf)
    assert (done.status_code, done.headers["location"]) == (303, "/sign-in?done=password")
    assert browser.get(path).status_code == 404  # used: the hash it was bound to changed
    assert sign_in(web.browser(), "new.adviser@ias.example.org", "p" * 14) == (303, "/")


def test_a_forged_link_is_404(web: Web) -> None:
    assert web.browser().get("/set-password/not-a-token").status_code == 404


def test_cli_user_add_prompts_twice_and_token_prints_once(
    web: Web, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(environment="test", database_url=database_url)
    monkeypatch.setattr(cli_users, "get_settings", lambda: settings)
    runner = CliRunner()
    result = runner.invoke(
        cli_users.user_app,
        ["add", "--role", "provider", "--provider", "KIDS", "sam@kids.example.org"],
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert result.exit_code == 0, result.output
    assert "created sam@kids.example.org for KIDS: Provider staff" in result.output
    with web.session() as s:
        assert auth.authenticate(s, "sam@kids.example.org", PASSWORD, now=START).role == "provider"

    result = runner.invoke(
        cli_users.user_app, ["add", "--role", "manager", "--one-time-link", "m@ias.example.org"]
    )
    assert result.exit_code == 0, result.output
    assert "/set-password/" in result.output

    refused = runner.invoke(cli_users.user_app, ["add", "--role", "boss", "x@ias.example.org"])
    assert refused.exit_code == 2
    assert "the role must be one of adviser (IAS adviser)" in refused.output
    assert "Password" not in refused.output  # refused before anyone types a password

    for args, words in (
        (["--role", "provider"], "Choose the provider this person works for"),
        (["--role", "adviser", "--provider", "KIDS"], "only provider staff work for a provider"),
    ):
        refused = runner.invoke(cli_users.user_app, ["add", *args, "y@ias.example.org"])
        assert refused.exit_code == 2 and words in refused.output, refused.output
        assert "Password" not in refused.output
    with web.session() as s:
        assert s.execute(select(User).where(col(User.email) == "y@ias.example.org")).first() is None

    result = runner.invoke(
        cli_users.user_app, ["token", "sam@kids.example.org", "--name", "case system"]
    )
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[0]
    assert token.startswith("cw_")
    with web.session() as s:
        row = s.execute(select(ApiToken)).scalar_one()
        assert row.token_hash == auth.token_hash(token) and row.name == "case system"
        user = s.execute(select(User).where(col(User.email) == "sam@kids.example.org")).scalar_one()
        assert auth.resolve_api_token(s, token, now=START) is not None
        assert user.id == row.user_id
