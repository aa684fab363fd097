"""The web cast: an app per database with its clock pinned, and a browser per person.

``web`` builds the app on the test's database (SQLite and PostgreSQL legs), pins
``app.state.clock`` to a moment the test can move, and creates the cast: an
adviser, a manager, an admin, and staff of two providers (Solution Talk and Collis
Mediation). Everyone two-factor sign-in is required of (the manager and the admin) is
enrolled, with a secret known to the tests (:func:`mfa_secret`), so the sign-in helpers
here and in the browser tests answer the code step like a person with their phone
(:func:`sign_in_code`); tests of enrolment itself make their own un-enrolled people.
``web.browser(user)`` is a TestClient already signed in as that user
(a real server-side session, started directly so argon2 runs only in the sign-in
tests); its ``post`` adds the session's CSRF token unless told not to.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import httpx
import pyotp
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlmodel import Session, col

from casework import auth, cases
from casework.cases import find_provider, mfa
from casework.config import Settings
from casework.db import session_scope
from casework.models import Case, CaseEvent, User
from casework.web.app import create_app
from casework.web.deps import SESSION_COOKIE
from tests.conftest import ADVISER, at
from tests.factories import advance, allocate_to, create_case

PASSWORD = "correct horse battery staple"
START = at("2026-11-12", "10:00")


def mfa_secret(email: str) -> str:
    """The test cast's authenticator secret: fixed per person, so a test can make codes."""
    return base64.b32encode(hashlib.sha256(email.encode()).digest()[:20]).decode()


def enrol(session: Session, settings: Settings, user: User, now: dt.datetime) -> None:
    """Two-factor sign-in on for ``user``, as if they had enrolled with their phone."""
    user.totp_secret = auth.seal_secret(settings, mfa_secret(user.email))
    user.totp_enabled_at = now
    session.commit()


def enrol_where_required(
    session: Session, settings: Settings, users: list[User], now: dt.datetime
) -> None:
    for user in users:
        if mfa.mfa_required(user, settings):
            enrol(session, settings, user, now)


def sign_in_code(engine: Engine, email: str, clock: Clock) -> str:
    """A code the app will accept now for ``email``: each is accepted once, so when this
    time step's code was used already (a second sign-in at a pinned moment), the next
    step's (accepted too), or else the clock moves on 30 seconds, as a person would wait."""
    with session_scope(engine) as s:
        user = s.execute(select(User).where(col(User.email) == email)).scalar_one()
        last = user.totp_last_step
    totp = pyotp.TOTP(mfa_secret(email))
    step = totp.timecode(clock.now)
    if last is not None and last >= step + 1:
        clock.now += dt.timedelta(seconds=30 * (last - step))
        step = totp.timecode(clock.now)
    if last is not None and last >= step:
        step += 1
    return totp.generate_otp(step)


@lru_cache(maxsize=1)
def password_hash() -> str:
    """One argon2 hash for the whole run: hashing per user per test would dominate."""
    return auth.hash_password(PASSWORD)


@dataclass
class Clock:
    """The app's pinned clock; tests move it with ``web.clock.now = ...``."""

    now: dt.datetime

    def __call__(self) -> dt.datetime:
        return self.now


class Browser:
    """A TestClient signed in as one user, posting forms with that session's CSRF token."""

    def __init__(
        self,
        app: FastAPI,
        token: str | None = None,
        csrf: str = "",
        base_url: str = "http://testserver",
    ) -> None:
        self.client = TestClient(app, base_url=base_url, follow_redirects=False)
        self.csrf = csrf
        if token is not None:
            self.client.cookies.set(SESSION_COOKIE, token)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(url, **kwargs)

    def post(
        self, url: str, data: dict[str, Any] | None = None, *, csrf: str | None = "session"
    ) -> httpx.Response:
        body = dict(data or {})
        if csrf == "session":
            body["csrf_token"] = self.csrf
        elif csrf is not None:
            body["csrf_token"] = csrf
        return self.client.post(url, data=body)


@dataclass
class Web:
    app: FastAPI
    engine: Engine
    settings: Settings
    clock: Clock
    users: dict[str, User] = field(default_factory=dict)

    def session(self) -> Any:
        return session_scope(self.engine)

    def browser(self, who: str | None = None) -> Browser:
        """A browser signed in as ``who`` (a key of ``users``), or signed out if None."""
        if who is None:
            return Browser(self.app)
        with session_scope(self.engine) as s:
            user = s.get(User, self.users[who].id)
            assert user is not None
            handle = auth.start_session(s, user, now=self.clock.now)
        return Browser(self.app, handle.token, handle.csrf_token)


CAST = {
    "adviser": ("alice.adviser@ias.example.org", "adviser", None),
    "manager": ("morgan.manager@ias.example.org", "manager", None),
    "admin": ("ada.admin@ias.example.org", "admin", None),
    "provider_a": ("pat@solution-talk.example.org", "provider", "solution-talk"),
    "provider_b": ("bo@collis.example.org", "provider", "collis"),
}


@pytest.fixture
def web(engine: Engine, session: Session, settings: Settings) -> Iterator[Web]:
    clock = Clock(START)
    app = create_app(settings, engine)
    app.state.clock = clock
    users: dict[str, User] = {}
    for key, (email, role, provider) in CAST.items():
        user = User(
            email=email,
            name=key,
            role=role,
            provider_id=find_provider(session, provider).id if provider else None,
            password_hash=password_hash(),
            created_at=START,
        )
        session.add(user)
        session.commit()
        users[key] = user
    enrol_where_required(session, settings, list(users.values()), START)
    yield Web(app, engine, settings, clock, users)


def form_sign_in(
    web: Web, browser: Browser, email: str, password: str = PASSWORD, next_url: str = ""
) -> httpx.Response:
    """Sign in through the form as a person would, answering the code step when asked
    (with the code their app would show now); the last response."""
    page = browser.get("/sign-in")
    response = browser.post(
        "/sign-in",
        {"email": email, "password": password, "next": next_url},
        csrf=csrf_in(page.text),
    )
    if response.headers.get("location", "").startswith("/sign-in/code"):
        step = browser.get(response.headers["location"])
        response = browser.post(
            "/sign-in/code",
            {"code": sign_in_code(web.engine, email, web.clock), "next": next_url},
            csrf=csrf_in(step.text),
        )
    return response


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_in(html: str) -> str:
    """The CSRF token a rendered form carries."""
    found = _CSRF.search(html)
    assert found, "no CSRF field in the page"
    return found.group(1)


def provider_actor(web: Web, who: str) -> cases.Actor:
    user = web.users[who]
    return auth.actor_for(user, "portal")


def make_case(
    web: Web,
    *,
    provider: str | None = None,
    accepted: bool = False,
    mediating: bool = False,
    **overrides: Any,
) -> Case:
    """A mediation case through the use cases: advised, optionally allocated and accepted,
    optionally with mediation chosen (the LA told on 10 November 2026)."""
    with web.session() as s:
        case = create_case(s, web.settings, **overrides)
        if provider is None and not mediating:
            return case
        advance(s, web.settings, case, "advise")
        if provider is not None:
            allocate_to(
                s,
                case.reference,
                provider,
                now=at("2026-11-10", "11:00"),
                actor=ADVISER,
                settings=web.settings,
            )
            if accepted or mediating:
                code = provider
                who = next(k for k, v in CAST.items() if v[2] == code)
                cases.respond_to_allocation(
                    s,
                    case.reference,
                    accept=True,
                    now=at("2026-11-10", "12:00"),
                    actor=provider_actor(web, who),
                    settings=web.settings,
                )
        if mediating:
            case = cases.advance(
                s,
                case.reference,
                "choose_mediation",
                now=at("2026-11-10", "13:00"),
                actor=ADVISER,
                settings=web.settings,
                data={"la_told_on": "2026-11-10"},
            )
        return cases.get_case(s, case.reference)


def reload(web: Web, reference: str) -> Case:
    with web.session() as s:
        return cases.get_case(s, reference)


def events_of(web: Web, reference: str) -> list[CaseEvent]:
    with web.session() as s:
        return cases.case_events(s, cases.get_case(s, reference), include_views=True)
