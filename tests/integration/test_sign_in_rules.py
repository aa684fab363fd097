"""Sign-in rules through the use cases and the CLI, on SQLite and PostgreSQL.

The lock-out must hold under parallel guesses (the count is one UPDATE, taken before
the password is checked), every refusal must look and cost the same, and a new
password, a disabled account or a new role must end every session of the person,
whichever door (a page, `casework user ...`) made the change.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlmodel import Session, col
from typer.testing import CliRunner, Result

from casework import auth
from casework.cases import ValidationFailed, find_provider
from casework.cli import app
from casework.db import session_scope
from casework.models import User, UserSession
from tests.conftest import at, forget_cached_settings_and_engine
from tests.passwords import CountingHasher, install_counting_hasher

NOW = at("2026-11-12", "10:00")
PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a brand new passphrase"
EMAIL = "alice.adviser@ias.example.org"


@pytest.fixture
def hasher(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> CountingHasher:
    return install_counting_hasher(monkeypatch, request)


@pytest.fixture
def alice(session: Session, hasher: CountingHasher) -> User:
    user = User(
        email=EMAIL,
        name="Alice",
        role="adviser",
        password_hash=hasher.hash(PASSWORD),
        created_at=NOW,
    )
    session.add(user)
    session.commit()
    return user


def _reload(engine: Engine, user_id: int | None) -> User:
    with session_scope(engine) as s:
        user = s.get(User, user_id)
        assert user is not None
        return user


def _attempt(engine: Engine, email: str, password: str, now: dt.datetime = NOW) -> str:
    with session_scope(engine) as s:
        try:
            auth.authenticate(s, email, password, now=now)
        except auth.SignInFailed as exc:
            return str(exc)
    return "signed in"


# --- The lock-out under parallel guesses ------------------------------------------------


def test_forty_parallel_wrong_passwords_check_the_real_hash_at_most_five_times(
    engine: Engine, alice: User, hasher: CountingHasher
) -> None:
    start = threading.Barrier(40)

    def guess(n: int) -> str:
        start.wait()
        return _attempt(engine, EMAIL, f"wrong guess number {n}")

    with ThreadPoolExecutor(40) as pool:
        answers = list(pool.map(guess, range(40)))
    assert answers == [auth.SIGN_IN_REFUSED] * 40
    assert hasher.checked.count(alice.password_hash) == auth.MAX_FAILED_LOGINS
    assert len(hasher.checked) == 40  # the others checked the dummy hash: same work
    after = _reload(engine, alice.id)
    assert after.failed_logins == auth.MAX_FAILED_LOGINS
    assert after.locked_until == NOW + auth.LOCKOUT
    # Paused: even the right password is not checked until the pause is over.
    assert _attempt(engine, EMAIL, PASSWORD) == auth.SIGN_IN_REFUSED
    assert hasher.checked.count(alice.password_hash) == auth.MAX_FAILED_LOGINS
    assert _attempt(engine, EMAIL, PASSWORD, NOW + auth.LOCKOUT) == "signed in"
    assert _reload(engine, alice.id).failed_logins == 0


def test_the_count_restarts_after_a_pause_and_a_success_forgives_it(
    engine: Engine, alice: User
) -> None:
    for _ in range(auth.MAX_FAILED_LOGINS - 1):
        _attempt(engine, EMAIL, "wrong password!")
    assert _attempt(engine, EMAIL, PASSWORD) == "signed in"
    assert _reload(engine, alice.id).failed_logins == 0
    for _ in range(auth.MAX_FAILED_LOGINS):
        _attempt(engine, EMAIL, "wrong password!")
    later = NOW + auth.LOCKOUT + dt.timedelta(minutes=1)
    assert _attempt(engine, EMAIL, "wrong password!", later) == auth.SIGN_IN_REFUSED
    after = _reload(engine, alice.id)
    assert (after.failed_logins, after.locked_until) == (1, None)


def test_unknown_disabled_and_paused_accounts_cost_one_check_and_say_the_same(
    engine: Engine, session: Session, alice: User, hasher: CountingHasher
) -> None:
    bob = auth.create_user(session, email="bob@ias.example.org", role="manager", now=NOW)
    bob.password_hash = hasher.hash(PASSWORD)
    session.commit()
    auth.disable_user(session, bob, now=NOW)
    for _ in range(auth.MAX_FAILED_LOGINS):
        _attempt(engine, EMAIL, "wrong password!")
    for email in ("nobody@ias.example.org", "bob@ias.example.org", EMAIL):
        hasher.checked.clear()
        assert _attempt(engine, email, PASSWORD) == auth.SIGN_IN_REFUSED, email
        assert len(hasher.checked) == 1, email
        assert hasher.checked[0] not in (alice.password_hash, bob.password_hash), email


# --- Sessions end when the person's access changes ----------------------------------------


def _sessions(engine: Engine, user: User, n: int = 2) -> list[str]:
    with session_scope(engine) as s:
        fresh = s.get(User, user.id)
        assert fresh is not None
        return [auth.start_session(s, fresh, now=NOW).token for _ in range(n)]


def _live(engine: Engine, tokens: list[str], now: dt.datetime = NOW) -> list[bool]:
    with session_scope(engine) as s:
        return [auth.resolve_session(s, t, now=now) is not None for t in tokens]


def _open_rows(engine: Engine, user: User) -> int:
    with session_scope(engine) as s:
        rows = s.execute(
            select(UserSession).where(
                col(UserSession.user_id) == user.id, col(UserSession.ended_at).is_(None)
            )
        ).scalars()
        return len(list(rows))


def test_a_new_password_ends_every_session(engine: Engine, session: Session, alice: User) -> None:
    tokens = _sessions(engine, alice)
    assert _live(engine, tokens) == [True, True]
    auth.set_password(session, alice, NEW_PASSWORD, now=NOW)
    assert _live(engine, tokens) == [False, False]
    assert _open_rows(engine, alice) == 0
    assert _attempt(engine, EMAIL, PASSWORD) == auth.SIGN_IN_REFUSED
    assert _live(engine, _sessions(engine, alice, 1)) == [True]


def test_disabling_ends_every_session_and_enabling_does_not_revive_them(
    engine: Engine, session: Session, alice: User
) -> None:
    tokens = _sessions(engine, alice)
    auth.disable_user(session, alice, now=NOW)
    auth.enable_user(session, alice)
    assert _live(engine, tokens) == [False, False]
    assert _open_rows(engine, alice) == 0
    assert _attempt(engine, EMAIL, PASSWORD) == "signed in"


def test_a_new_role_ends_every_session_and_the_same_role_changes_nothing(
    engine: Engine, session: Session, alice: User
) -> None:
    kids = find_provider(session, "kids").id
    session.commit()  # end the read: SQLite cannot turn an old snapshot into a write
    tokens = _sessions(engine, alice)
    assert auth.change_role(session, alice, "adviser", now=NOW) is False
    assert _live(engine, tokens) == [True, True]
    assert auth.change_role(session, alice, "provider", now=NOW, provider="kids") is True
    assert _live(engine, tokens) == [False, False]
    assert _reload(engine, alice.id).provider_id == kids
    moved = _sessions(engine, alice, 1)
    assert auth.change_role(session, alice, "provider", now=NOW, provider="collis") is True
    assert _live(engine, moved) == [False]  # another provider's staff now: another reach
    with pytest.raises(ValidationFailed, match="provider staff need"):
        auth.change_role(session, alice, "provider", now=NOW)


def test_a_reset_during_the_password_check_wins_over_the_sign_in(
    engine: Engine, alice: User, hasher: CountingHasher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old password was right when checked, but it was replaced meanwhile."""
    real_verify = hasher.verify

    def verify_while_an_admin_resets(hash: str | bytes, password: str | bytes) -> bool:
        with session_scope(engine) as s:
            user = s.get(User, alice.id)
            assert user is not None
            auth.set_password(s, user, NEW_PASSWORD, now=NOW)
        return real_verify(hash, password)

    monkeypatch.setattr(hasher, "verify", verify_while_an_admin_resets)
    assert _attempt(engine, EMAIL, PASSWORD) == auth.SIGN_IN_REFUSED
    assert _open_rows(engine, alice) == 0


def test_a_session_started_from_a_sign_in_checked_before_a_reset_is_refused(
    engine: Engine, alice: User
) -> None:
    with session_scope(engine) as s:
        signed_in = auth.authenticate(s, EMAIL, PASSWORD, now=NOW)
        with session_scope(engine) as admin:
            user = admin.get(User, alice.id)
            assert user is not None
            auth.set_password(admin, user, NEW_PASSWORD, now=NOW)
        handle = auth.start_session(s, signed_in, now=NOW)
    assert _live(engine, [handle.token]) == [False]


# --- The same rules through `casework user ...` ---------------------------------------------


@pytest.fixture
def casework(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    forget_cached_settings_and_engine()
    monkeypatch.setenv("CASEWORK_DATABASE_URL", database_url)
    monkeypatch.setenv("CASEWORK_ENVIRONMENT", "test")
    runner = CliRunner()

    def run(*args: str, input: str | None = None, expect: int = 0) -> Result:
        result = runner.invoke(app, list(args), input=input)
        assert result.exit_code == expect, (result.output, result.exception)
        return result

    yield run
    forget_cached_settings_and_engine()


def test_cli_password_disable_and_role_end_every_session(
    casework: Any, engine: Engine, alice: User
) -> None:
    tokens = _sessions(engine, alice)
    done = casework("user", "password", EMAIL, input=f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n")
    assert "signed out everywhere" in done.stdout
    assert _live(engine, tokens) == [False, False]
    assert _attempt(engine, EMAIL, NEW_PASSWORD) == "signed in"

    tokens = _sessions(engine, alice)
    casework("user", "role", EMAIL, "--role", "manager")
    assert _live(engine, tokens) == [False, False]
    assert _reload(engine, alice.id).role == "manager"
    again = casework("user", "role", EMAIL, "--role", "manager")
    assert "nothing changed" in again.stdout

    tokens = _sessions(engine, alice)
    casework("user", "disable", EMAIL)
    assert _live(engine, tokens) == [False, False]
    assert _attempt(engine, EMAIL, NEW_PASSWORD) == auth.SIGN_IN_REFUSED
    casework("user", "enable", EMAIL)
    assert _attempt(engine, EMAIL, NEW_PASSWORD) == "signed in"


def test_cli_refusals_say_what_to_do_and_change_nothing(
    casework: Any, engine: Engine, alice: User
) -> None:
    tokens = _sessions(engine, alice)
    short = casework("user", "password", EMAIL, input="short\nshort\n", expect=2)
    assert "use at least 12 characters" in short.stderr
    missing = casework("user", "disable", "nobody@ias.example.org", expect=3)
    assert "no user nobody@ias.example.org" in missing.stderr
    bad_role = casework("user", "role", EMAIL, "--role", "boss", expect=2)
    assert "role must be one of" in bad_role.stderr
    assert _live(engine, tokens) == [True, True]
    assert _attempt(engine, EMAIL, PASSWORD) == "signed in"


def test_an_administrator_sees_and_ends_a_users_sessions(
    casework: Any, engine: Engine, alice: User
) -> None:
    # The CLI asks about now, so these sessions start now.
    now = dt.datetime.now(dt.UTC)
    with session_scope(engine) as s:
        fresh = s.get(User, alice.id)
        assert fresh is not None
        tokens = [auth.start_session(s, fresh, now=now).token for _ in range(2)]
    listed = casework("user", "sessions", EMAIL)
    assert listed.stdout.count("signed in ") == 2
    assert ":00Z" not in listed.stdout and "+00:00" not in listed.stdout  # times in words
    done = casework("user", "sign-out", EMAIL)
    assert "signed out everywhere" in done.stdout
    assert _live(engine, tokens, now) == [False, False]
    assert "not signed in anywhere" in casework("user", "sessions", EMAIL).stdout
    assert _attempt(engine, EMAIL, PASSWORD) == "signed in"  # they may sign in again
