"""User administration and two-factor sign-in through the use cases and the CLI,
on SQLite and PostgreSQL.

Every change is one transaction with one staff audit row in a hash chain; disabling
someone ends every session and revokes every token at once; only an administrator
may act; a TOTP code is accepted once, a recovery code once, and wrong codes pause
the account like wrong passwords.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pyotp
import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col
from typer.testing import CliRunner, Result

from casework import audit, auth
from casework.cases import Actor, NotPermitted, ValidationFailed, mfa
from casework.cases import users as user_cases
from casework.cli import app
from casework.config import Settings
from casework.db import session_scope
from casework.models import ApiToken, RecoveryCode, StaffEvent, User, UserSession
from tests.conftest import at, forget_cached_settings_and_engine
from tests.passwords import CountingHasher, install_counting_hasher

NOW = at("2026-11-12", "10:00")
PASSWORD = "correct horse battery staple"
ADMIN = Actor(id="user:ada.admin@ias.example.org", role="admin", channel="web")
ADVISER_ACTOR = Actor(id="user:alice@ias.example.org", role="adviser", channel="web")


@pytest.fixture
def hasher(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> CountingHasher:
    return install_counting_hasher(monkeypatch, request)


@pytest.fixture
def alice(session: Session, hasher: CountingHasher) -> User:
    user = User(
        email="alice@ias.example.org",
        name="Alice",
        role="adviser",
        password_hash=hasher.hash(PASSWORD),
        created_at=NOW,
    )
    session.add(user)
    session.commit()
    return user


def _events(engine: Engine, user_id: int | None = None) -> list[StaffEvent]:
    with session_scope(engine) as s:
        query = select(StaffEvent).order_by(col(StaffEvent.id))
        if user_id is not None:
            query = query.where(col(StaffEvent.subject_id) == user_id)
        return list(s.execute(query).scalars())


def _start_sessions(engine: Engine, user_id: int | None, n: int = 2) -> list[str]:
    with session_scope(engine) as s:
        user = s.get(User, user_id)
        assert user is not None
        return [auth.start_session(s, user, now=NOW).token for _ in range(n)]


def _signed_in(engine: Engine, token: str, now: dt.datetime = NOW) -> bool:
    with session_scope(engine) as s:
        return auth.resolve_session(s, token, now=now) is not None


def _token_works(engine: Engine, value: str) -> bool:
    with session_scope(engine) as s:
        return auth.resolve_api_token(s, value, now=NOW) is not None


# --- Administration ------------------------------------------------------------------------


def test_adding_a_user_is_audited_and_gives_a_one_time_link(
    engine: Engine, session: Session, settings: Settings
) -> None:
    invited = user_cases.add_user(
        session,
        settings,
        email=" Sam.New@IAS.example.org ",
        role="adviser",
        name="Sam",
        actor=ADMIN,
        now=NOW,
    )
    assert invited.user.email == "sam.new@ias.example.org"
    token = invited.link.rsplit("/", 1)[1]
    assert auth.user_for_set_password_token(session, settings, token) is not None
    (row,) = _events(engine, invited.user.id)
    assert (row.event, row.actor, row.channel) == ("user_added", ADMIN.id, "web")
    assert row.hash is not None

    with pytest.raises(ValidationFailed, match="already a user"):
        user_cases.add_user(
            session, settings, email="sam.new@ias.example.org", role="adviser", actor=ADMIN, now=NOW
        )
    with pytest.raises(ValidationFailed, match="Choose the provider"):
        user_cases.add_user(
            session, settings, email="p@x.example.org", role="provider", actor=ADMIN, now=NOW
        )
    assert len(_events(engine)) == 1


def test_only_an_administrator_may_act_and_a_refusal_changes_nothing(
    engine: Engine, session: Session, settings: Settings, alice: User
) -> None:
    assert alice.id is not None
    refused: list[Any] = [
        lambda: user_cases.add_user(
            session, settings, email="x@ias.example.org", role="admin", actor=ADVISER_ACTOR, now=NOW
        ),
        lambda: user_cases.disable_user(session, alice.id or 0, actor=ADVISER_ACTOR, now=NOW),
        lambda: user_cases.change_role(
            session, alice.id or 0, "admin", actor=ADVISER_ACTOR, now=NOW
        ),
        lambda: user_cases.issue_api_token(
            session, alice.id or 0, name="mine", actor=ADVISER_ACTOR, now=NOW
        ),
        lambda: user_cases.list_users(session, actor=ADVISER_ACTOR, now=NOW),
    ]
    for attempt in refused:
        with pytest.raises(NotPermitted, match="Only an administrator"):
            attempt()
    assert _events(engine) == []
    with session_scope(engine) as s:
        fresh = s.get(User, alice.id)
        assert fresh is not None and fresh.role == "adviser" and fresh.active
        assert s.execute(select(ApiToken)).first() is None


def test_disabling_ends_every_session_and_revokes_every_token_at_once(
    engine: Engine, session: Session, alice: User
) -> None:
    assert alice.id is not None
    sessions = _start_sessions(engine, alice.id)
    tokens = [
        user_cases.issue_api_token(session, alice.id, name=n, actor=ADMIN, now=NOW).value
        for n in ("LA system", "Reports")
    ]
    assert all(_token_works(engine, t) for t in tokens)

    user_cases.disable_user(session, alice.id, actor=ADMIN, now=NOW)

    assert [_signed_in(engine, t) for t in sessions] == [False, False]
    assert [_token_works(engine, t) for t in tokens] == [False, False]
    with session_scope(engine) as s:
        revoked = s.execute(select(col(ApiToken.revoked_at))).scalars().all()
        assert revoked == [NOW, NOW]
    disabled = _events(engine, alice.id)[-1]
    assert disabled.event == "user_disabled" and disabled.data == {"tokens_revoked": 2}

    user_cases.enable_user(session, alice.id, actor=ADMIN, now=NOW)
    assert [_signed_in(engine, t) for t in sessions] == [False, False]  # stay ended
    assert [_token_works(engine, t) for t in tokens] == [False, False]
    assert [e.event for e in _events(engine, alice.id)][-1] == "user_enabled"


def test_an_administrator_cannot_disable_themselves(
    session: Session, settings: Settings, engine: Engine
) -> None:
    me = user_cases.add_user(
        session, settings, email="ada.admin@ias.example.org", role="admin", actor=ADMIN, now=NOW
    ).user
    with pytest.raises(NotPermitted, match="cannot disable yourself"):
        user_cases.disable_user(session, me.id or 0, actor=ADMIN, now=NOW)
    with session_scope(engine) as s:
        fresh = s.get(User, me.id)
        assert fresh is not None and fresh.active


def test_resetting_sign_in_stops_the_password_and_every_earlier_link(
    engine: Engine, session: Session, settings: Settings, alice: User
) -> None:
    assert alice.id is not None
    sessions = _start_sessions(engine, alice.id, 1)
    first = user_cases.reset_sign_in(session, settings, alice.id, actor=ADMIN, now=NOW)
    second = user_cases.reset_sign_in(session, settings, alice.id, actor=ADMIN, now=NOW)
    assert not _signed_in(engine, sessions[0])
    with session_scope(engine) as s:
        with pytest.raises(auth.SignInFailed):
            auth.authenticate(s, alice.email, PASSWORD, now=NOW)
        old = first.link.rsplit("/", 1)[1]
        new = second.link.rsplit("/", 1)[1]
        assert auth.user_for_set_password_token(s, settings, old) is None
        assert auth.user_for_set_password_token(s, settings, new) is not None
    assert [e.event for e in _events(engine, alice.id)] == ["sign_in_reset", "sign_in_reset"]


def test_a_new_role_is_audited_with_before_and_after(
    engine: Engine, session: Session, alice: User
) -> None:
    assert alice.id is not None
    sessions = _start_sessions(engine, alice.id, 1)
    assert user_cases.change_role(session, alice.id, "manager", actor=ADMIN, now=NOW)
    assert not user_cases.change_role(session, alice.id, "manager", actor=ADMIN, now=NOW)
    assert not _signed_in(engine, sessions[0])
    (row,) = _events(engine, alice.id)
    assert row.event == "role_changed"
    assert row.data == {"from": "adviser", "to": "manager", "provider": ""}


def test_a_token_is_shown_once_stored_hashed_and_revoked_alone(
    engine: Engine, session: Session, alice: User
) -> None:
    assert alice.id is not None
    keep = user_cases.issue_api_token(session, alice.id, name="Keep", actor=ADMIN, now=NOW)
    drop = user_cases.issue_api_token(session, alice.id, name="Drop", actor=ADMIN, now=NOW)
    with session_scope(engine) as s:
        stored = s.execute(select(ApiToken)).scalars().all()
        assert {t.token_hash for t in stored} == {
            auth.token_hash(keep.value),
            auth.token_hash(drop.value),
        }
        assert all(drop.value not in str(t.model_dump()) for t in stored)
    user_cases.revoke_api_token(session, alice.id, drop.token.id or 0, actor=ADMIN, now=NOW)
    assert _token_works(engine, keep.value) and not _token_works(engine, drop.value)
    with pytest.raises(ValidationFailed, match="already revoked"):
        user_cases.revoke_api_token(session, alice.id, drop.token.id or 0, actor=ADMIN, now=NOW)
    with pytest.raises(ValidationFailed, match="Enter what the token is for"):
        user_cases.issue_api_token(session, alice.id, name=" ", actor=ADMIN, now=NOW)
    assert [e.event for e in _events(engine, alice.id)] == [
        "token_issued",
        "token_issued",
        "token_revoked",
    ]
    assert all(keep.value not in str(e.data) for e in _events(engine))


def test_an_administrator_sees_and_ends_one_session_or_all(
    engine: Engine, session: Session, alice: User
) -> None:
    assert alice.id is not None
    tokens = _start_sessions(engine, alice.id, 3)
    detail = user_cases.user_detail(session, alice.id, actor=ADMIN, now=NOW)
    assert len(detail.sessions) == 3
    one = detail.sessions[0]
    user_cases.end_session(session, alice.id, one.id or 0, actor=ADMIN, now=NOW)
    assert sum(_signed_in(engine, t) for t in tokens) == 2
    user_cases.end_all_sessions(session, alice.id, actor=ADMIN, now=NOW)
    assert sum(_signed_in(engine, t) for t in tokens) == 0
    assert [e.event for e in _events(engine, alice.id)] == ["session_ended", "sessions_ended"]


def test_the_staff_chain_verifies_and_finds_a_row_changed_behind_the_apps_back(
    engine: Engine, session: Session, alice: User
) -> None:
    assert alice.id is not None
    user_cases.change_role(session, alice.id, "manager", actor=ADMIN, now=NOW)
    user_cases.disable_user(session, alice.id, actor=ADMIN, now=NOW)
    user_cases.enable_user(session, alice.id, actor=ADMIN, now=NOW)
    with engine.connect() as connection:
        assert audit.find_staff_breaks(connection) == (3, None)
    tamper = text(
        "UPDATE staff_events SET actor = 'user:someone.else@example.org' WHERE event = :e"
    )
    if engine.dialect.name == "postgresql":
        # The database itself refuses; only a superuser switching the trigger off can edit.
        with pytest.raises(DBAPIError) as refused, engine.begin() as connection:
            connection.execute(tamper, {"e": "user_disabled"})
        assert "append-only" in str(refused.value.orig)
        with pytest.raises(DBAPIError), engine.begin() as connection:
            connection.execute(text("DELETE FROM staff_events"))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("ALTER TABLE staff_events DISABLE TRIGGER USER"))
        connection.execute(tamper, {"e": "user_disabled"})
        if connection.dialect.name == "postgresql":
            connection.execute(text("ALTER TABLE staff_events ENABLE TRIGGER USER"))
    with engine.connect() as connection:
        walked, found = audit.find_staff_breaks(connection)
    assert walked == 2 and found is not None and found.event == "user_disabled"


# --- Two-factor sign-in ----------------------------------------------------------------------


def _enrolled(session: Session, settings: Settings, user: User) -> tuple[str, list[str]]:
    enrolment = mfa.start_enrolment(session, settings, user, now=NOW)
    code = pyotp.TOTP(enrolment.secret).at(NOW)
    codes = mfa.confirm_enrolment(
        session, settings, user, code, actor=auth.actor_for(user, "web"), now=NOW
    )
    return enrolment.secret, codes


def test_enrolment_needs_a_right_code_and_keeps_the_secret_encrypted(
    engine: Engine, session: Session, settings: Settings, alice: User
) -> None:
    enrolment = mfa.start_enrolment(session, settings, alice, now=NOW)
    assert mfa.start_enrolment(session, settings, alice, now=NOW).secret == enrolment.secret
    assert len(enrolment.grouped.split()) == 8
    with session_scope(engine) as s:
        stored = s.get(User, alice.id)
        assert stored is not None and stored.totp_secret
        assert enrolment.secret not in stored.totp_secret  # encrypted at rest
        assert not stored.mfa_on
    with pytest.raises(ValidationFailed, match="The code is not right") as refused:
        mfa.confirm_enrolment(
            session, settings, alice, "000000", actor=auth.actor_for(alice, "web"), now=NOW
        )
    assert refused.value.field == "code"
    assert _events(engine) == []
    codes = mfa.confirm_enrolment(
        session,
        settings,
        alice,
        pyotp.TOTP(enrolment.secret).at(NOW),
        actor=auth.actor_for(alice, "web"),
        now=NOW,
    )
    assert len(codes) == 10 and len(set(codes)) == 10
    with session_scope(engine) as s:
        hashes = s.execute(select(col(RecoveryCode.code_hash))).scalars().all()
        assert len(hashes) == 10 and all(c not in hashes for c in codes)
    assert [e.event for e in _events(engine, alice.id)] == ["mfa_enrolled"]


def test_a_code_is_accepted_once_and_a_recovery_code_once(
    engine: Engine, session: Session, settings: Settings, alice: User
) -> None:
    secret, codes = _enrolled(session, settings, alice)
    later = NOW + dt.timedelta(minutes=5)
    code = pyotp.TOTP(secret).at(later)
    accepted = mfa.sign_in_with_code(session, settings, alice, code, now=later)
    assert not accepted.recovery_code_used
    with pytest.raises(auth.SignInFailed, match="correct code"):
        mfa.sign_in_with_code(session, settings, alice, code, now=later)  # replayed

    spare = codes[3].lower().replace("-", " ")  # typed loosely
    used = mfa.sign_in_with_code(session, settings, alice, spare, now=later)
    assert used.recovery_code_used and used.recovery_codes_left == 9
    with pytest.raises(auth.SignInFailed):
        mfa.sign_in_with_code(session, settings, alice, codes[3], now=later)
    events = _events(engine, alice.id)
    assert [e.event for e in events] == ["mfa_enrolled", "recovery_code_used"]
    assert events[-1].data == {"codes_left": 9}


def test_wrong_codes_pause_the_account_even_with_the_right_password_between_them(
    engine: Engine, session: Session, settings: Settings, alice: User
) -> None:
    secret, _codes = _enrolled(session, settings, alice)
    later = NOW + dt.timedelta(minutes=5)
    for _ in range(2):
        # The right password does not forgive the wrong codes before it.
        with session_scope(engine) as s:
            auth.authenticate(s, alice.email, PASSWORD, now=later)
        for _ in range(2):
            with pytest.raises(auth.SignInFailed):
                mfa.sign_in_with_code(session, settings, alice, "123456", now=later)
    # 2 passwords + 4 codes: the fifth attempt paused the account; the right code is refused.
    with pytest.raises(auth.SignInFailed):
        mfa.sign_in_with_code(session, settings, alice, pyotp.TOTP(secret).at(later), now=later)
    with session_scope(engine) as s:
        paused = s.get(User, alice.id)
        assert paused is not None and paused.locked_until is not None
    after = later + auth.LOCKOUT + dt.timedelta(minutes=1)
    with session_scope(engine) as s:
        auth.authenticate(s, alice.email, PASSWORD, now=after)
    mfa.sign_in_with_code(session, settings, alice, pyotp.TOTP(secret).at(after), now=after)


def test_the_second_step_needs_the_proof_of_the_password_for_this_epoch(
    session: Session, settings: Settings, alice: User
) -> None:
    _enrolled(session, settings, alice)
    proof = auth.mfa_pending_token(settings, alice)
    assert auth.mfa_pending_user(session, settings, proof) is not None
    assert auth.mfa_pending_user(session, settings, proof + "x") is None
    user_cases.end_all_sessions(session, alice.id or 0, actor=ADMIN, now=NOW)  # epoch moves
    assert auth.mfa_pending_user(session, settings, proof) is None


def test_who_must_use_two_factor_sign_in(settings: Settings) -> None:
    people = {
        role: User(email=f"{role}@x.org", role=role, created_at=NOW)
        for role in ("adviser", "manager", "admin", "provider", "commissioner")
    }
    assert {r for r, u in people.items() if mfa.mfa_required(u, settings)} == {"manager", "admin"}
    stricter = settings.model_copy(update={"mfa_also_required_for": ["adviser"]})
    assert {r for r, u in people.items() if mfa.mfa_required(u, stricter)} == {
        "manager",
        "admin",
        "adviser",
    }


def test_resetting_two_factor_turns_it_off_and_ends_sessions(
    engine: Engine, session: Session, settings: Settings, alice: User
) -> None:
    _enrolled(session, settings, alice)
    sessions = _start_sessions(engine, alice.id, 1)
    user_cases.reset_mfa(session, alice.id or 0, actor=ADMIN, now=NOW)
    assert not _signed_in(engine, sessions[0])
    with session_scope(engine) as s:
        fresh = s.get(User, alice.id)
        assert fresh is not None and not fresh.mfa_on and fresh.totp_secret is None
        assert auth.recovery_codes_left(s, fresh) == 0
    with pytest.raises(ValidationFailed, match="has not set up"):
        user_cases.reset_mfa(session, alice.id or 0, actor=ADMIN, now=NOW)
    assert [e.event for e in _events(engine, alice.id)][-1] == "mfa_reset"


# --- The same rules through `casework user ...` -----------------------------------------------


@pytest.fixture
def casework(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    forget_cached_settings_and_engine()
    monkeypatch.setenv("CASEWORK_DATABASE_URL", database_url)
    monkeypatch.setenv("CASEWORK_ENVIRONMENT", "test")
    monkeypatch.setenv("CASEWORK_ACTOR", "operator")
    runner = CliRunner()

    def run(*args: str, input: str | None = None, expect: int = 0) -> Result:
        result = runner.invoke(app, list(args), input=input)
        assert result.exit_code == expect, (result.output, result.exception)
        return result

    yield run
    forget_cached_settings_and_engine()


def test_the_cli_uses_the_same_rules_and_audits_as_the_operator(
    casework: Any, engine: Engine, session: Session, settings: Settings, alice: User
) -> None:
    issued = casework("user", "token", alice.email, "--name", "LA system").stdout.strip()
    assert _token_works(engine, issued)
    listed = casework("user", "tokens", alice.email).stdout
    assert "LA system" in listed and issued not in listed
    sessions = _start_sessions(engine, alice.id, 1)

    done = casework("user", "disable", alice.email)
    assert "API tokens are revoked" in done.stdout
    assert not _token_works(engine, issued) and not _signed_in(engine, sessions[0])
    again = casework("user", "disable", alice.email, expect=2)
    assert "already disabled" in again.stderr
    casework("user", "enable", alice.email)

    _enrolled(session, settings, alice)
    assert "two-factor on" in casework("user", "list").stdout
    casework("user", "reset-mfa", alice.email)
    assert "two-factor on" not in casework("user", "list").stdout

    second = casework("user", "token", alice.email, "--name", "Second").stdout.strip()
    with session_scope(engine) as s:
        token_id = s.execute(
            select(col(ApiToken.id)).where(col(ApiToken.name) == "Second")
        ).scalar_one()
    casework("user", "revoke-token", alice.email, str(token_id))
    assert not _token_works(engine, second)

    link = casework("user", "reset", alice.email).stdout
    assert "/set-password/" in link

    events = _events(engine, alice.id)
    assert [e.event for e in events] == [
        "token_issued",
        "user_disabled",
        "user_enabled",
        "mfa_enrolled",
        "mfa_reset",
        "token_issued",
        "token_revoked",
        "sign_in_reset",
    ]
    cli_rows = [e for e in events if e.channel == "cli"]
    assert cli_rows and all(e.actor == "cli:operator" for e in cli_rows)
    with engine.connect() as connection:
        assert audit.find_staff_breaks(connection)[1] is None


def test_sessions_carry_the_device_they_were_started_on(engine: Engine, alice: User) -> None:
    with session_scope(engine) as s:
        user = s.get(User, alice.id)
        assert user is not None
        auth.start_session(
            s, user, now=NOW, user_agent="Mozilla/5.0 (Windows NT 10.0) Chrome/131.0 Safari/537"
        )
        row = s.execute(select(UserSession)).scalar_one()
    from casework.cases.words import device_words

    assert device_words(row.user_agent) == "Chrome on Windows"


def test_audit_verify_walks_the_user_administration_chain_too(
    casework: Any, engine: Engine, session: Session, alice: User
) -> None:
    user_cases.disable_user(session, alice.id or 0, actor=ADMIN, now=NOW)
    user_cases.enable_user(session, alice.id or 0, actor=ADMIN, now=NOW)
    ok = casework("audit", "verify").stdout
    assert "the audit trail of user administration verifies: 2 rows" in ok
    with engine.begin() as connection:  # behind the app's back (a superuser, on PostgreSQL)
        if connection.dialect.name == "postgresql":
            connection.execute(text("ALTER TABLE staff_events DISABLE TRIGGER USER"))
        connection.execute(text("UPDATE staff_events SET note = 'quietly' WHERE id = 1"))
        if connection.dialect.name == "postgresql":
            connection.execute(text("ALTER TABLE staff_events ENABLE TRIGGER USER"))
    out = casework("audit", "verify", expect=1).stdout
    assert "user administration does not verify" in out
    assert "Disabled" in out and "Thursday 12 November 2026 at 10:00am" in out
    assert "user_disabled" not in out
