"""Sign-in, sessions and API tokens: who is acting, proven.

Passwords are hashed with argon2. Sessions and API tokens are random secrets
handed to the client once; only their SHA-256 is stored, so a copy of the
database cannot be replayed as a login. Repeated failures lock an account for a
while (throttling), and every session expires.

A new user (or one who forgot their password) gets a one-time link instead of a
password sent to them: a signed, expiring token that stops working once a password
is set, because it is bound to the current password hash.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select
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


class SignInFailed(Exception):
    """Deliberately vague for the person signing in; ``locked`` says whether to wait."""

    def __init__(self, message: str, *, locked: bool = False) -> None:
        super().__init__(message)
        self.locked = locked


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(
            f"password: use at least {MIN_PASSWORD_LENGTH} characters", field="password"
        )
    return _hasher.hash(password)


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
    if role not in Role.__members__:
        raise ValidationFailed(f"role must be one of {', '.join(Role)}", field="role")
    provider_id = None
    if role == Role.provider:
        if not provider:
            raise ValidationFailed("provider staff need --provider NAME", field="provider")
        from casework.cases import find_provider

        provider_id = find_provider(session, provider).id
    elif provider:
        raise ValidationFailed("only provider staff are bound to a provider", field="provider")
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


def set_password(session: Session, user: User, password: str) -> None:
    user.password_hash = hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
    session.commit()


def authenticate(session: Session, email: str, password: str, *, now: dt.datetime) -> User:
    """The user, or SignInFailed; failures count towards a temporary lock-out."""
    user = session.execute(
        select(User).where(col(User.email) == email.strip().lower())
    ).scalar_one_or_none()
    if user is None or not user.active or not user.password_hash:
        _hasher.hash(password)  # spend the same time as a real check: no user enumeration
        raise SignInFailed("Enter a correct email address and password")
    if user.locked_until is not None and user.locked_until > now:
        raise SignInFailed(
            "Too many failed attempts: try again in 15 minutes or ask an administrator",
            locked=True,
        )
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILED_LOGINS:
            user.locked_until = now + LOCKOUT
            user.failed_logins = 0
        session.commit()
        raise SignInFailed("Enter a correct email address and password") from None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
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
    )
    session.add(row)
    session.commit()
    return SessionHandle(token, csrf, row.expires_at)


def resolve_session(
    session: Session, token: str | None, *, now: dt.datetime
) -> tuple[User, UserSession] | None:
    """The signed-in user for a cookie token, sliding the idle expiry; None if not valid."""
    if not token:
        return None
    row = session.execute(
        select(UserSession).where(col(UserSession.token_hash) == token_hash(token))
    ).scalar_one_or_none()
    if row is None or row.ended_at is not None or row.expires_at <= now:
        return None
    if now - row.created_at > SESSION_ABSOLUTE:
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.active:
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
