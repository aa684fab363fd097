"""Sign-in, sessions and API tokens: who is acting, proven.

Passwords are hashed with argon2. Sessions and API tokens are random secrets
handed to the client once; only their SHA-256 is stored, so a copy of the
database cannot be replayed as a login. Repeated failures pause an account for a
while (counted atomically, so parallel guesses get no more tries), every session
expires, and a new password, a disabled account or a new role ends every session.

A new user (or one who forgot their password) gets a one-time link instead of a
password sent to them: a signed, expiring token that stops working once a password
is set, because it is bound to the current password hash and session epoch.

Two-factor sign-in (TOTP, RFC 6238, through pyotp): the shared secret is stored
encrypted with Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) under a key
derived from ``CASEWORK_SECRET_KEY``, so a copy of the database alone does not give
anyone the codes; it is shown once, while the person enrols, and never again.
Changing the secret key makes stored secrets unreadable: everyone enrolled then signs
in with a recovery code or has their two-factor sign-in reset by an administrator,
and enrols again. A code is accepted once (the last accepted time step is kept) and
one step either side of now, for clocks a little out. Wrong codes count against the
same pause as wrong passwords: 5 failed attempts of either kind, then 15 minutes.
Recovery codes are 50 random bits each, so only their SHA-256 is kept, like tokens.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken
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
from casework.cases.words import PROVIDER_NEEDED, PROVIDER_ONLY_FOR_STAFF, ROLE_REFUSED
from casework.config import Settings
from casework.models import ApiToken, RecoveryCode, Role, User, UserSession

_hasher = PasswordHasher()

MAX_FAILED_LOGINS = 5
LOCKOUT = dt.timedelta(minutes=15)
SESSION_IDLE = dt.timedelta(hours=2)
SESSION_ABSOLUTE = dt.timedelta(hours=12)
MIN_PASSWORD_LENGTH = 12
SET_PASSWORD_MAX_AGE = dt.timedelta(days=7)
_SET_PASSWORD_SALT = "casework.set-password"
_MFA_PENDING_SALT = "casework.mfa-pending"
MFA_PENDING_MAX_AGE = dt.timedelta(minutes=5)
RECOVERY_CODE_COUNT = 10


# One answer for a wrong password, an unknown email, a disabled account and a paused
# one: a different answer (or status) would tell a guesser which emails exist.
SIGN_IN_REFUSED = (
    "Enter a correct email address and password."
    " After 5 failed attempts, signing in is paused for 15 minutes"
)


CODE_REFUSED = (
    "Enter a correct code from your authenticator app, or one of your recovery codes."
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
    provider_id = provider_binding(session, role, provider)
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


def check_role(role: str, provider: str | None) -> None:
    """Refuse a role that does not exist, or provider staff without their provider.

    One home for the rule: the use cases call it inside their transaction and the CLI
    before it asks for a password, so nobody types a password for a refused user.
    """
    if role not in Role.__members__:
        raise ValidationFailed(ROLE_REFUSED, field="role")
    if role == Role.provider and not provider:
        raise ValidationFailed(PROVIDER_NEEDED, field="provider")
    if role != Role.provider and provider:
        raise ValidationFailed(PROVIDER_ONLY_FOR_STAFF, field="provider")


def provider_binding(session: Session, role: str, provider: str | None) -> int | None:
    """The provider id a user with ``role`` is bound to: required for provider staff only."""
    check_role(role, provider)
    if role == Role.provider:
        from casework.cases import find_provider

        return find_provider(session, provider or "").id
    return None


def end_every_session(session: Session, user: User, now: dt.datetime) -> None:
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
    end_every_session(session, user, now)
    session.commit()


def set_password(session: Session, user: User, password: str, *, now: dt.datetime) -> None:
    """A new password ends every session: whoever knew the old one is signed out."""
    user.password_hash = hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
    end_every_session(session, user, now)
    session.commit()


def disable_user(session: Session, user: User, *, now: dt.datetime) -> None:
    """No more sign-ins, sessions or API use for this person."""
    user.active = False
    end_every_session(session, user, now)
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
    provider_id = provider_binding(session, role, provider)
    if user.role == role and user.provider_id == provider_id:
        return False
    user.role = role
    user.provider_id = provider_id
    end_every_session(session, user, now)
    session.commit()
    return True


def _engine_of(session: Session) -> Engine:
    bind = session.get_bind()
    return bind.engine if isinstance(bind, Connection) else bind


def _claim_attempt(
    session: Session, email: str, now: dt.datetime, *, user_id: int | None = None
) -> tuple[int, str, int, str | None] | None:
    """Count one attempt against the account before its password is checked.

    One UPDATE decides, so parallel guesses queue on the row: the attempt that brings
    the count to the limit also pauses the account, and later ones (and any while
    paused) claim nothing. At most ``MAX_FAILED_LOGINS`` guesses are ever checked
    against the real hash per pause, whatever the concurrency; a success resets the
    count. Runs in its own short transaction (``claim``: BEGIN IMMEDIATE on SQLite),
    so the count holds even if the caller's work is rolled back.

    Returns (user id, password hash, session epoch, sealed TOTP secret), or None for an
    unknown, disabled, password-less or paused account. The second step (a two-factor
    code) claims by ``user_id`` against the same count.
    """
    users = cast(Table, User.__table__)  # type: ignore[attr-defined]
    who = users.c.id == user_id if user_id is not None else users.c.email == email
    lock_over = and_(users.c.locked_until.is_not(None), users.c.locked_until <= now)
    counted = case((lock_over, 1), else_=users.c.failed_logins + 1)
    pause_until = literal(now + LOCKOUT, users.c.locked_until.type)
    statement = (
        update(users)
        .where(
            who,
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
        .returning(users.c.id, users.c.password_hash, users.c.session_epoch, users.c.totp_secret)
    )
    with _engine_of(session).connect().execution_options(claim=True) as conn, conn.begin():
        row = conn.execute(statement).first()
    return None if row is None else (row[0], row[1], row[2], row[3])


def authenticate(session: Session, email: str, password: str, *, now: dt.datetime) -> User:
    """The user, or SignInFailed with the same words whatever the reason.

    Every attempt is counted first (see :func:`_claim_attempt`) and forgiven only by a
    success; unknown and paused accounts cost one dummy check, like a real one.
    """
    claimed = _claim_attempt(session, email.strip().lower(), now)
    if claimed is None:
        _spend_a_check(password)
        raise SignInFailed()
    user_id, password_hash, epoch, _secret = claimed
    try:
        _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        raise SignInFailed() from None
    # With two-factor sign-in on, a code must follow: this attempt stays counted until
    # the code is right, so a guesser who knows the password cannot reset the count
    # between codes. Decided inside the one UPDATE (no read first: on SQLite a read
    # before the write could leave a snapshot too old to write from).
    users = cast(Table, User.__table__)  # type: ignore[attr-defined]
    password_only = users.c.totp_enabled_at.is_(None)
    values: dict[str, object] = {
        "failed_logins": case((password_only, 0), else_=users.c.failed_logins),
        "locked_until": case((password_only, null()), else_=users.c.locked_until),
        "last_login_at": case(
            (password_only, literal(now, users.c.last_login_at.type)), else_=users.c.last_login_at
        ),
    }
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


def start_session(
    session: Session, user: User, *, now: dt.datetime, user_agent: str = ""
) -> SessionHandle:
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
        user_agent=user_agent[:300],
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
        try:
            session.commit()
        except OperationalError:
            # Best effort: another writer holds SQLite's lock ("database is locked").
            # The session was checked valid above and is still valid; sliding its expiry
            # can wait for the next request a minute on, and the page must not fail.
            session.rollback()
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
    """Changes with the password and the session epoch: a link dies once a password is set
    or an administrator resets the sign-in again (each reset moves the epoch on)."""
    material = f"{user.password_hash}:{user.session_epoch}"
    return hashlib.sha256(material.encode()).hexdigest()[:16]


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


# --- Two-factor sign-in (TOTP) and recovery codes ---------------------------------------


def _fernet(settings: Settings) -> Fernet:
    digest = hashlib.sha256(f"casework.totp:{settings.secret_key}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def new_totp_secret() -> str:
    """A random base32 secret (160 bits, as RFC 4226 recommends)."""
    return pyotp.random_base32(32)


def seal_secret(settings: Settings, secret: str) -> str:
    return _fernet(settings).encrypt(secret.encode()).decode()


def open_secret(settings: Settings, sealed: str | None) -> str | None:
    """The plain secret, or None when there is none or the secret key has changed."""
    if not sealed:
        return None
    try:
        return _fernet(settings).decrypt(sealed.encode()).decode()
    except InvalidToken:
        return None


def totp_uri(secret: str, *, email: str, issuer: str) -> str:
    """The ``otpauth://`` address an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=issuer)


def matching_step(secret: str, code: str, now: dt.datetime) -> int | None:
    """The time step ``code`` is right for (now, or one step either side), else None."""
    code = "".join(code.split())
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    step = totp.timecode(now)
    for offset in (0, -1, 1):
        if secrets.compare_digest(totp.generate_otp(step + offset), code):
            return step + offset
    return None


def normalise_recovery_code(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def new_recovery_codes(
    session: Session, user: User, *, now: dt.datetime, count: int = RECOVERY_CODE_COUNT
) -> list[str]:
    """Replace the user's recovery codes in the caller's transaction; the codes, once."""
    session.execute(
        update(RecoveryCode)
        .where(col(RecoveryCode.user_id) == user.id, col(RecoveryCode.used_at).is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    codes = []
    for _ in range(count):
        raw = base64.b32encode(secrets.token_bytes(7)).decode()[:10]
        codes.append(f"{raw[:5]}-{raw[5:]}")
        session.add(
            RecoveryCode(
                user_id=user.id,  # type: ignore[arg-type]
                code_hash=token_hash(normalise_recovery_code(raw)),
                created_at=now,
            )
        )
    return codes


def recovery_codes_left(session: Session, user: User) -> int:
    return len(
        session.execute(
            select(col(RecoveryCode.id)).where(
                col(RecoveryCode.user_id) == user.id, col(RecoveryCode.used_at).is_(None)
            )
        ).all()
    )


def clear_mfa(session: Session, user: User, *, now: dt.datetime) -> None:
    """Two-factor sign-in off, recovery codes spent, in the caller's transaction."""
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    session.execute(
        update(RecoveryCode)
        .where(col(RecoveryCode.user_id) == user.id, col(RecoveryCode.used_at).is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )


def _pending_serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key, salt=_MFA_PENDING_SALT)


def mfa_pending_token(settings: Settings, user: User) -> str:
    """Proof that the password was right, for the code step (5 minutes, this epoch)."""
    return _pending_serializer(settings).dumps({"u": user.id, "e": user.session_epoch})


def mfa_pending_user(session: Session, settings: Settings, token: str | None) -> User | None:
    """The user half-way through signing in, or None if the proof is forged or stale."""
    if not token:
        return None
    try:
        payload: Any = _pending_serializer(settings).loads(
            token, max_age=int(MFA_PENDING_MAX_AGE.total_seconds())
        )
    except BadSignature:
        return None
    if not isinstance(payload, dict):
        return None
    user = session.get(User, payload.get("u"))
    if user is None or not user.active or not user.mfa_on or payload.get("e") != user.session_epoch:
        return None
    return user


@dataclass(frozen=True)
class CodeAccepted:
    user: User
    recovery_code_used: bool
    recovery_codes_left: int


def authenticate_code(
    session: Session,
    settings: Settings,
    user: User,
    code: str,
    *,
    now: dt.datetime,
    on_recovery_code: Callable[[int], object] | None = None,
) -> CodeAccepted:
    """The second step: a TOTP code (each accepted once) or an unused recovery code.

    Counted against the same pause as passwords (:func:`_claim_attempt`); a success
    forgives the count and records the sign-in. Commits. ``on_recovery_code`` (given
    the number of codes left) adds the audit row of a recovery code's use to the same
    transaction, so a code is never spent without its record.
    """
    # Read what is needed, then end whatever the session was reading: after the claim
    # nothing is read before the first write, since on SQLite a snapshot older than
    # another writer's commit cannot be written from ("database is locked").
    wanted, expected_epoch = user.id, user.session_epoch
    session.commit()
    claimed = _claim_attempt(session, "", now, user_id=wanted)
    if claimed is None:
        raise SignInFailed(CODE_REFUSED)
    user_id, _hash, epoch, sealed = claimed
    if epoch != expected_epoch:
        raise SignInFailed(CODE_REFUSED)
    values: dict[str, object] = {"failed_logins": 0, "locked_until": None, "last_login_at": now}
    used_recovery = False
    secret = open_secret(settings, sealed)
    step = matching_step(secret, code, now) if secret else None
    if step is not None:
        # Only a step later than the last accepted one: a code overheard is spent. Only
        # while two-factor sign-in is still on and nothing reset the user meanwhile.
        done = session.execute(
            update(User)
            .where(
                col(User.id) == user_id,
                col(User.session_epoch) == epoch,
                col(User.totp_enabled_at).is_not(None),
                or_(col(User.totp_last_step).is_(None), col(User.totp_last_step) < step),
            )
            .values(totp_last_step=step, **values)
            .execution_options(synchronize_session=False)
        )
        if cast(CursorResult[Any], done).rowcount != 1:
            session.rollback()
            raise SignInFailed(CODE_REFUSED)
    else:
        spent = session.execute(
            update(RecoveryCode)
            .where(
                col(RecoveryCode.user_id) == user_id,
                col(RecoveryCode.code_hash) == token_hash(normalise_recovery_code(code)),
                col(RecoveryCode.used_at).is_(None),
            )
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        if cast(CursorResult[Any], spent).rowcount != 1:
            session.rollback()
            raise SignInFailed(CODE_REFUSED)
        used_recovery = True
        done = session.execute(
            update(User)
            .where(
                col(User.id) == user_id,
                col(User.session_epoch) == epoch,
                col(User.totp_enabled_at).is_not(None),
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if cast(CursorResult[Any], done).rowcount != 1:
            session.rollback()
            raise SignInFailed(CODE_REFUSED)
        if on_recovery_code is not None:
            on_recovery_code(recovery_codes_left(session, user))
    session.commit()
    session.refresh(user)
    return CodeAccepted(user, used_recovery, recovery_codes_left(session, user))


def revoke_api_tokens(session: Session, user: User, *, now: dt.datetime) -> int:
    """Revoke every live token of the user in the caller's transaction; how many."""
    done = session.execute(
        update(ApiToken)
        .where(col(ApiToken.user_id) == user.id, col(ApiToken.revoked_at).is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(cast(CursorResult[Any], done).rowcount)
