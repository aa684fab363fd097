"""Sign-in, sessions and API tokens: who is acting, proven.

Passwords are hashed with argon2. Sessions and API tokens are random secrets
handed to the client once; only their SHA-256 is stored, so a copy of the
database cannot be replayed as a login. Repeated failures pause an account for a
while (counted atomically, so parallel guesses get no more tries), every session
expires, and a new password, a disabled account or a new role ends every session.

A new user (or one who forgot their password) gets a one-time link instead of a
password sent to them: a signed, expiring token that stops working once a password
is set, because it is bound to the current password hash.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import (
    Connection,
    CursorResult,
    Engine,
    Table,
    and_,
    bindparam,
    case,
    literal,
    null,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col

from casework.cases import Actor, ValidationFailed
from casework.config import Settings
from casework.models import ApiToken, Role, User, UserSession

_hasher = PasswordHasher()

MAX_FAILED_LOGINS = 5
LOCKOUT = dt.timedelta(minutes=15)
SESSION_IDLE = dt.timedelta(hours=2)
SESSION_ABSOLUTE = dt.timedelta(hours=12)
MIN_PASSWORD_LENGTH = 12
SET_PASSWORD_MAX_AGE = dt.timedelta(days=7)
_SET_PASSWORD_SALT = "casework.set-password"


# One answer for a wrong password, an unknown email, a disabled account and a paused
# one: a different answer (or status) would tell a guesser which emails exist.
SIGN_IN_REFUSED = (
    "Enter a correct email address and password."
    " After 5 failed attempts, signing in is paused for 15 minutes"
)


class SignInFailed(Exception):
    """Deliberately vague: the same words whatever went wrong."""

    def __init__(self, message: str = SIGN_IN_REFUSED) -> None:
        super().__init__(message)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(
            f"password: use at least {MIN_PASSWORD_LENGTH} characters", field="password"
        )
    return _hasher.hash(password)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """A hash nobody knows the password of: refusals without a real hash verify this one,
    so they cost what a real check costs and timing does not reveal which emails exist."""
    return _hasher.hash(secrets.token_urlsafe(24))


def _spend_a_check(password: str) -> None:
    with contextlib.suppress(VerificationError, InvalidHashError):
        _hasher.verify(_dummy_hash(), password)


def create_user(
    session: Session,
    *,
    email: str,
    role: str,
    now: dt.datetime,
    password: str | None = None,
    name: str = "",
    provider: str | None = None,
) -> User:
    """Add a user; provider staff must name their provider, nobody else may."""
    provider_id = _provider_binding(session, role, provider)
    email = email.strip().lower()
    if session.execute(select(User).where(col(User.email) == email)).scalar_one_or_none():
        raise ValidationFailed(f"a user {email} already exists", field="email")
    user = User(
        email=email,
        name=name or email.split("@")[0],
        role=role,
        provider_id=provider_id,
        password_hash=hash_password(password) if password else "",
        created_at=now,
    )
    session.add(user)
    session.commit()
    return user


def _provider_binding(session: Session, role: str, provider: str | None) -> int | None:
    """The provider id a user with ``role`` is bound to: required for provider staff only."""
    if role not in Role.__members__:
        raise ValidationFailed(f"role must be one of {', '.join(Role)}", field="role")
    if role == Role.provider:
        if not provider:
            raise ValidationFailed("provider staff need --provider NAME", field="provider")
        from casework.cases import find_provider

        return find_provider(session, provider).id
    if provider:
        raise ValidationFailed("only provider staff are bound to a provider", field="provider")
    return None


def _end_every_session(session: Session, user: User, now: dt.datetime) -> None:
    """End the user's sessions in the caller's transaction.

    Open sessions are marked ended (the record says when), and the epoch moves on so a
    sign-in whose password check was already under way cannot start a session that
    outlives the change (its session carries the old epoch and is refused).
    """
    user.session_epoch += 1
    session.execute(
        update(UserSession)
        .where(col(UserSession.user_id) == user.id, col(UserSession.ended_at).is_(None))
        .values(ended_at=now)
        .execution_options(synchronize_session=False)
    )


def live_sessions(session: Session, user: User, *, now: dt.datetime) -> list[UserSession]:
    """The user's sessions that could still be used, newest first."""
    return list(
        session.execute(
            select(UserSession)
            .where(
                col(UserSession.user_id) == user.id,
                col(UserSession.ended_at).is_(None),
                col(UserSession.expires_at) > now,
                col(UserSession.epoch) == user.session_epoch,
            )
            .order_by(col(UserSession.created_at).desc())
        ).scalars()
    )


def sign_out_everywhere(session: Session, user: User, *, now: dt.datetime) -> None:
    """An administrator ends every session of a user (a lost laptop, a shared screen)."""
    _end_every_session(session, user, now)
    session.commit()


def set_password(session: Session, user: User, password: str, *, now: dt.datetime) -> None:
    """A new password ends every session: whoever knew the old one is signed out."""
    user.password_hash = hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
    _end_every_session(session, user, now)
    session.commit()


def disable_user(session: Session, user: User, *, now: dt.datetime) -> None:
    """No more sign-ins, sessions or API use for this person."""
    user.active = False
    _end_every_session(session, user, now)
    session.commit()


def enable_user(session: Session, user: User) -> None:
    """Let a disabled person sign in again (their old sessions stay ended)."""
    user.active = True
    user.failed_logins = 0
    user.locked_until = None
    session.commit()


def change_role(
    session: Session, user: User, role: str, *, now: dt.datetime, provider: str | None = None
) -> bool:
    """Give the user another role (or move provider staff to another provider).

    What a person may see changes with their role, so every session ends and they sign
    in again under the new one. Returns False when nothing changed (sessions kept).
    """
    provider_id = _provider_binding(session, role, provider)
    if user.role == role and user.provider_id == provider_id:
        return False
    user.role = role
    user.provider_id = provider_id
    _end_every_session(session, user, now)
    session.commit()
    return True


def _engine_of(session: Session) -> Engine:
    bind = session.get_bind()
    return bind.engine if isinstance(bind, Connection) else bind


def _claim_attempt(session: Session, email: str, now: dt.datetime) -> tuple[int, str, int] | None:
    """Count one attempt against the account before its password is checked.

    One UPDATE decides, so parallel guesses queue on the row: the attempt that brings
    the count to the limit also pauses the account, and later ones (and any while
    paused) claim nothing. At most ``MAX_FAILED_LOGINS`` guesses are ever checked
    against the real hash per pause, whatever the concurrency; a success resets the
    count. Runs in its own short transaction (``claim``: BEGIN IMMEDIATE on SQLite),
    so the count holds even if the caller's work is rolled back.

    Returns (user id, password hash, session epoch), or None for an unknown, disabled,
    password-less or paused account.
    """
    users = cast(Table, User.__table__)  # type: ignore[attr-defined]
    lock_over = and_(users.c.locked_until.is_not(None), users.c.locked_until <= now)
    counted = case((lock_over, 1), else_=users.c.failed_logins + 1)
    pause_until = literal(now + LOCKOUT, users.c.locked_until.type)
    statement = (
        update(users)
        .where(
            users.c.email == email,
            users.c.active == true(),
            users.c.password_hash != "",
            or_(
                and_(users.c.locked_until.is_(None), users.c.failed_logins < MAX_FAILED_LOGINS),
                lock_over,
            ),
        )
        .values(
            failed_logins=counted,
            locked_until=case((counted >= MAX_FAILED_LOGINS, pause_until), else_=null()),
        )
        .returning(users.c.id, users.c.password_hash, users.c.session_epoch)
    )
    with _engine_of(session).connect().execution_options(claim=True) as conn, conn.begin():
        row = conn.execute(statement).first()
    return None if row is None else (row[0], row[1], row[2])


def authenticate(session: Session, email: str, password: str, *, now: dt.datetime) -> User:
    """The user, or SignInFailed with the same words whatever the reason.

    Every attempt is counted first (see :func:`_claim_attempt`) and forgiven only by a
    success; unknown and paused accounts cost one dummy check, like a real one.
    """
    claimed = _claim_attempt(session, email.strip().lower(), now)
    if claimed is None:
        _spend_a_check(password)
        raise SignInFailed()
    user_id, password_hash, epoch = claimed
    try:
        _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        raise SignInFailed() from None
    values: dict[str, object] = {"failed_logins": 0, "locked_until": None, "last_login_at": now}
    if _hasher.check_needs_rehash(password_hash):
        values["password_hash"] = _hasher.hash(password)
    # Only if nothing changed while the password was being checked: a reset, a disable
    # or a role change in that moment wins over this sign-in.
    done = session.execute(
        update(User)
        .where(
            col(User.id) == user_id,
            col(User.session_epoch) == epoch,
            col(User.active) == true(),
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    user = session.get(User, user_id, populate_existing=True)
    if cast(CursorResult[Any], done).rowcount != 1 or user is None:
        session.rollback()
        raise SignInFailed()
    session.commit()
    return user


@dataclass(frozen=True)
class SessionHandle:
    """What the web layer puts in the cookie (``token``) and in forms (``csrf_token``)."""

    token: str
    csrf_token: str
    expires_at: dt.datetime


def start_session(session: Session, user: User, *, now: dt.datetime) -> SessionHandle:
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    row = UserSession(
        token_hash=token_hash(token),
        user_id=user.id,  # type: ignore[arg-type]
        csrf_token=csrf,
        created_at=now,
        last_seen_at=now,
        expires_at=now + SESSION_IDLE,
        epoch=user.session_epoch,
    )
    session.add(row)
    session.commit()
    return SessionHandle(token, csrf, row.expires_at)


# Every page asks this first: the session and its user in one statement, built once.
_SESSION_AND_USER = (
    select(UserSession, User)
    .join(User, col(User.id) == col(UserSession.user_id))
    .where(col(UserSession.token_hash) == bindparam("token_hash"))
)


def resolve_session(
    session: Session, token: str | None, *, now: dt.datetime
) -> tuple[User, UserSession] | None:
    """The signed-in user for a cookie token, sliding the idle expiry; None if not valid."""
    if not token:
        return None
    found = session.execute(_SESSION_AND_USER, {"token_hash": token_hash(token)}).first()
    if found is None:
        return None
    row, user = found
    if row.ended_at is not None or row.expires_at <= now:
        return None
    if now - row.created_at > SESSION_ABSOLUTE:
        return None
    if not user.active or row.epoch != user.session_epoch:
        return None
    if now - row.last_seen_at > dt.timedelta(minutes=1):
        row.last_seen_at = now
        row.expires_at = min(now + SESSION_IDLE, row.created_at + SESSION_ABSOLUTE)
        session.commit()
    return user, row


def end_session(session: Session, token: str | None, *, now: dt.datetime) -> None:
    if not token:
        return
    row = session.execute(
        select(UserSession).where(col(UserSession.token_hash) == token_hash(token))
    ).scalar_one_or_none()
    if row is not None and row.ended_at is None:
        row.ended_at = now
        session.commit()


def create_api_token(session: Session, user: User, *, name: str, now: dt.datetime) -> str:
    """A new bearer token, shown once; only its hash is kept."""
    token = "cw_" + secrets.token_urlsafe(32)
    session.add(
        ApiToken(token_hash=token_hash(token), user_id=user.id, name=name, created_at=now)  # type: ignore[arg-type]
    )
    session.commit()
    return token


def resolve_api_token(session: Session, token: str, *, now: dt.datetime) -> User | None:
    row = session.execute(
        select(ApiToken).where(col(ApiToken.token_hash) == token_hash(token))
    ).scalar_one_or_none()
    if row is None or row.revoked_at is not None:
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        return None
    # Record use at most once a minute: a write per API request would serialise every
    # request on SQLite and add a commit to each on PostgreSQL.
    if row.last_used_at is None or now - row.last_used_at > dt.timedelta(minutes=1):
        row.last_used_at = now
        try:
            session.commit()
        except OperationalError:  # busy database: losing one "last used" stamp is fine
            session.rollback()
    return user


def actor_for(user: User, channel: str) -> Actor:
    """The audit identity of a signed-in user: ``user:<email>`` plus role and provider."""
    return Actor(
        id=f"user:{user.email}", role=user.role, channel=channel, provider_id=user.provider_id
    )


# --- One-time set-password links ------------------------------------------------------------


def _set_password_serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key, salt=_SET_PASSWORD_SALT)


def _hash_fingerprint(user: User) -> str:
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def make_set_password_token(settings: Settings, user: User) -> str:
    """A link token valid for 7 days and only until the user's password changes."""
    return _set_password_serializer(settings).dumps({"u": user.id, "h": _hash_fingerprint(user)})


def user_for_set_password_token(session: Session, settings: Settings, token: str) -> User | None:
    """The user a set-password token is for, or None if forged, expired or already used."""
    try:
        payload: Any = _set_password_serializer(settings).loads(
            token, max_age=int(SET_PASSWORD_MAX_AGE.total_seconds())
        )
    except BadSignature:
        return None
    if not isinstance(payload, dict):
        return None
    user = session.get(User, payload.get("u"))
    if user is None or not user.active or payload.get("h") != _hash_fingerprint(user):
        return None
    return user


def set_password_url(settings: Settings, user: User) -> str:
    return (
        f"{settings.public_url.rstrip('/')}/set-password/{make_set_password_token(settings, user)}"
    )


def first_admin(session: Session, *, email: str, now: dt.datetime) -> User | None:
    """The administrator to invite while nobody can sign in yet (a fresh install).

    A database with no users gets one admin with no password, who chooses one through
    a one-time link. Until someone has a password, each start offers that admin a new
    link, since the last one may have scrolled away or expired. Once anyone can sign
    in, None: accounts are then given out by an administrator.
    """
    if session.execute(select(col(User.id)).where(col(User.password_hash) != "").limit(1)).first():
        return None
    waiting = session.execute(
        select(User)
        .where(col(User.role) == Role.admin, col(User.active).is_(True))
        .order_by(col(User.id))
        .limit(1)
    ).scalar_one_or_none()
    if waiting is not None:
        return waiting
    if session.execute(select(col(User.id)).limit(1)).first():
        return None
    return create_user(session, email=email, role=Role.admin, now=now, name="Administrator")
