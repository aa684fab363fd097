"""Administering the people who sign in: one rule set for the admin pages and the CLI.

Only an administrator acts here (the CLI acts as one: whoever runs it has the
server). Every change is one transaction with one row in the staff audit chain
(:class:`casework.models.StaffEvent`, sealed by :mod:`casework.audit`), so a change of
who may see children's records can always be traced and cannot be quietly edited.

Disabling a person ends every session and revokes every API token in the same
transaction: nothing they started keeps working after the page says "disabled".
Their next request, through any door, is refused (sessions carry the user's epoch,
tokens are checked against ``revoked_at`` and the user's ``active`` flag).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col

from casework import auth
from casework.cases.context import Actor
from casework.cases.errors import (
    CaseworkError,
    Conflict,
    NotFound,
    NotPermitted,
    ValidationFailed,
    WriteRefusedAfterRead,
)
from casework.cases.unit import (
    jsonable,
    refused_after_a_stale_read,
    require_aware,
    runs_again_as_writer,
)
from casework.config import Settings
from casework.models import ApiToken, Provider, Role, StaffEvent, User, UserSession


@contextmanager
def staff_transaction(session: Session) -> Iterator[None]:
    """Roll back on any failure; a unique clash (two admins adding one email) reads as words.

    A refusal (every rule here is checked before anything is changed) leaves the
    session's objects as they were: rolling back would expire them, and the page
    that says "you cannot" still needs the signed-in person it shows in the header.
    """
    try:
        yield
    except IntegrityError as exc:
        session.rollback()
        raise Conflict("Someone else changed this person at the same moment; try again") from exc
    except OperationalError as exc:
        session.rollback()
        if refused_after_a_stale_read(session, exc):
            # The use case runs again as the writer (runs_again_as_writer).
            raise WriteRefusedAfterRead(
                "Someone else was saving a change at the same moment; try again"
            ) from exc
        raise
    except CaseworkError:
        if session.new or session.dirty or session.deleted:
            session.rollback()
        raise
    except Exception:
        session.rollback()
        raise


def staff_event(
    *,
    actor: Actor,
    event: str,
    at: dt.datetime,
    subject: User | None,
    data: Mapping[str, Any] | None = None,
    note: str = "",
) -> StaffEvent:
    """The one staff audit row a change appends (sealed into the chain when written)."""
    return StaffEvent(
        at=at,
        actor=actor.id,
        event=event,
        subject_id=subject.id if subject is not None else None,
        data=jsonable(data or {}),
        channel=actor.channel,
        note=note,
    )


check_role = auth.check_role  # the doors check a role before asking for a password


def require_admin(actor: Actor) -> None:
    if actor.role != Role.admin:
        raise NotPermitted("Only an administrator can manage the people who sign in")


def find_user(session: Session, who: int | str) -> User:
    """A user by id or email address; NotFound in words otherwise."""
    if isinstance(who, int):
        user = session.get(User, who)
    else:
        user = session.execute(
            select(User).where(col(User.email) == who.strip().lower())
        ).scalar_one_or_none()
    if user is None:
        raise NotFound(f"There is no user {who}. The list of users shows everyone who signs in.")
    return user


def _not_yourself(actor: Actor, user: User, what: str) -> None:
    """An administrator cannot lock themselves out (nobody might be left to let them in)."""
    if actor.id == f"user:{user.email}":
        raise NotPermitted(f"You cannot {what} yourself; ask another administrator")


# --- Reading -----------------------------------------------------------------------------


@dataclass(frozen=True)
class UserSummary:
    user: User
    provider_name: str
    live_sessions: int


def list_users(session: Session, *, actor: Actor, now: dt.datetime) -> list[UserSummary]:
    """Everyone who can sign in, by email, with their provider and live sessions."""
    require_admin(actor)
    providers = {p.id: p.name for p in session.execute(select(Provider)).scalars()}
    users = list(session.execute(select(User).order_by(col(User.email))).scalars())
    live: dict[int, int] = {}
    for row in session.execute(
        select(UserSession, User)
        .join(User, col(User.id) == col(UserSession.user_id))
        .where(
            col(UserSession.ended_at).is_(None),
            col(UserSession.expires_at) > now,
            col(UserSession.epoch) == col(User.session_epoch),
        )
    ).all():
        live[row[1].id] = live.get(row[1].id, 0) + 1
    return [
        UserSummary(
            u, providers.get(u.provider_id, "") if u.provider_id else "", live.get(u.id or 0, 0)
        )
        for u in users
    ]


@dataclass(frozen=True)
class UserDetail:
    user: User
    provider_name: str
    sessions: list[UserSession]
    tokens: list[ApiToken]
    recovery_codes_left: int
    history: list[StaffEvent]


def user_detail(session: Session, user_id: int, *, actor: Actor, now: dt.datetime) -> UserDetail:
    """One person as an administrator sees them: sessions, tokens and what was done."""
    require_admin(actor)
    user = find_user(session, user_id)
    provider = session.get(Provider, user.provider_id) if user.provider_id else None
    tokens = list(
        session.execute(
            select(ApiToken)
            .where(col(ApiToken.user_id) == user.id)
            .order_by(col(ApiToken.revoked_at).is_not(None), col(ApiToken.created_at).desc())
        ).scalars()
    )
    history = list(
        session.execute(
            select(StaffEvent)
            .where(col(StaffEvent.subject_id) == user.id)
            .order_by(col(StaffEvent.id).desc())
            .limit(20)
        ).scalars()
    )
    return UserDetail(
        user=user,
        provider_name=provider.name if provider else "",
        sessions=auth.live_sessions(session, user, now=now),
        tokens=tokens,
        recovery_codes_left=auth.recovery_codes_left(session, user),
        history=history,
    )


# --- Changing ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Invited:
    """A new or reset user and the one-time link they choose a password with."""

    user: User
    link: str


@runs_again_as_writer
def add_user(
    session: Session,
    settings: Settings,
    *,
    email: str,
    role: str,
    name: str = "",
    provider: str | None = None,
    password: str | None = None,
    actor: Actor,
    now: dt.datetime,
) -> Invited:
    """Add a person; they choose a password through a one-time link (or one is given)."""
    require_admin(actor)
    now = require_aware(now)
    email = email.strip().lower()
    if "@" not in email or email.startswith("@") or email.endswith("@"):
        raise ValidationFailed(
            "Enter an email address in the correct format, like name@example.org", field="email"
        )
    auth.check_role(role, provider)
    with staff_transaction(session):
        provider_id = auth.provider_binding(session, role, provider)
        if session.execute(select(col(User.id)).where(col(User.email) == email)).first():
            raise ValidationFailed(f"There is already a user {email}", field="email")
        user = User(
            email=email,
            name=name.strip() or email.split("@")[0],
            role=role,
            provider_id=provider_id,
            password_hash=auth.hash_password(password) if password else "",
            created_at=now,
        )
        session.add(user)
        session.flush()
        session.add(
            staff_event(
                actor=actor,
                event="user_added",
                at=now,
                subject=user,
                data={"email": email, "role": role, "provider": provider or ""},
            )
        )
        session.commit()
    return Invited(user, auth.set_password_url(settings, user))


@runs_again_as_writer
def disable_user(session: Session, user_id: int, *, actor: Actor, now: dt.datetime) -> User:
    """No more sign-ins; every session ends and every API token is revoked, at once."""
    require_admin(actor)
    now = require_aware(now)
    with staff_transaction(session):
        user = find_user(session, user_id)
        _not_yourself(actor, user, "disable")
        if not user.active:
            raise ValidationFailed(f"{user.email} is already disabled")
        user.active = False
        auth.end_every_session(session, user, now)
        revoked = auth.revoke_api_tokens(session, user, now=now)
        session.add(
            staff_event(
                actor=actor,
                event="user_disabled",
                at=now,
                subject=user,
                data={"tokens_revoked": revoked},
            )
        )
        session.commit()
    return user


@runs_again_as_writer
def enable_user(session: Session, user_id: int, *, actor: Actor, now: dt.datetime) -> User:
    """Let a disabled person sign in again; their old sessions and tokens stay ended."""
    require_admin(actor)
    now = require_aware(now)
    with staff_transaction(session):
        user = find_user(session, user_id)
        if user.active:
            raise ValidationFailed(f"{user.email} can already sign in")
        user.active = True
        user.failed_logins = 0
        user.locked_until = None
        session.add(staff_event(actor=actor, event="user_enabled", at=now, subject=user))
        session.commit()
    return user


@runs_again_as_writer
def reset_sign_in(
    session: Session, settings: Settings, user_id: int, *, actor: Actor, now: dt.datetime
) -> Invited:
    """A forgotten password: the old one stops working, every session ends, and the person
    gets a new one-time link (valid 7 days, once). Any earlier link stops working."""
    require_admin(actor)
    now = require_aware(now)
    with staff_transaction(session):
        user = find_user(session, user_id)
        if not user.active:
            raise ValidationFailed(f"{user.email} is disabled: re-enable them first")
        user.password_hash = ""
        user.failed_logins = 0
        user.locked_until = None
        auth.end_every_session(session, user, now)
        session.add(staff_event(actor=actor, event="sign_in_reset", at=now, subject=user))
        session.commit()
    return Invited(user, auth.set_password_url(settings, user))


@runs_again_as_writer
def set_password(
    session: Session, user_id: int, password: str, *, actor: Actor, now: dt.datetime
) -> User:
    """An administrator sets a password (the CLI's prompt); every session ends."""
    require_admin(actor)
    now = require_aware(now)
    with staff_transaction(session):
        user = find_user(session, user_id)
        user.password_hash = auth.hash_password(password)
        user.failed_logins = 0
        user.locked_until = None
        auth.end_every_session(session, user, now)
        session.add(staff_event(actor=actor, event="password_set", at=now, subject=user))
        session.commit()
    return user


@runs_again_as_writer
def change_role(
    session: Session,
    user_id: int,
    role: str,
    *,
    provider: str | None = None,
    actor: Actor,
    now: dt.datetime,
) -> bool:
    """Another role (or provider): every session ends so the new reach applies at once.

    False when nothing changed (sessions kept, nothing audited).
    """
    require_admin(actor)
    now = require_aware(now)
    auth.check_role(role, provider)
    with staff_transaction(session):
        user = find_user(session, user_id)
        provider_id = auth.provider_binding(session, role, provider)
        if user.role == role and user.provider_id == provider_id:
            return False
        if user.role == Role.admin and role != Role.admin:
            _not_yourself(actor, user, "take the administrator role from")
        before = user.role
        user.role = role
        user.provider_id = provider_id
        auth.end_every_session(session, user, now)
        session.add(
            staff_event(
                actor=actor,
                event="role_changed",
                at=now,
                subject=user,
                data={"from": before, "to": role, "provider": provider or ""},
            )
        )
        session.commit()
    return True


@dataclass(frozen=True)
class IssuedToken:
    """The token's value is here once and nowhere else: only its hash is stored."""

    token: ApiToken
    value: str


@runs_again_as_writer
def issue_api_token(
    session: Session, user_id: int, *, name: str, actor: Actor, now: dt.datetime
) -> IssuedToken:
    """A bearer token acting as the user, scoped exactly like them; shown once."""
    require_admin(actor)
    now = require_aware(now)
    name = name.strip()
    if not name:
        raise ValidationFailed(
            "Enter what the token is for, like 'LA case system'", field="token_name"
        )
    if len(name) > 100:
        raise ValidationFailed("Use 100 characters or fewer for the name", field="token_name")
    with staff_transaction(session):
        user = find_user(session, user_id)
        if not user.active:
            raise ValidationFailed(f"{user.email} is disabled: re-enable them first")
        value = "cw_" + auth.secrets.token_urlsafe(32)
        token = ApiToken(
            token_hash=auth.token_hash(value),
            user_id=user.id,  # type: ignore[arg-type]
            name=name,
            created_at=now,
        )
        session.add(token)
        session.flush()
        session.add(
            staff_event(
                actor=actor,
                event="token_issued",
                at=now,
                subject=user,
                data={"token_id": token.id, "name": name},
            )
        )
        session.commit()
    return IssuedToken(token, value)


@runs_again_as_writer
def revoke_api_token(
    session: Session, user_id: int, token_id: int, *, actor: Actor, now: dt.datetime
) -> ApiToken:
    """The token stops working at its next request."""
    require_admin(actor)
    now = require_aware(now)
    with staff_transaction(session):
        user = find_user(session, user_id)
        token = session.get(ApiToken, token_id)
        if token is None or token.user_id != user.id:
            raise NotFound("There is no such API token for this person")
        if token.revoked_at is not None:
            raise ValidationFailed(f"The token '{token.name}' was already revoked")
        token.revoked_at = now
        session.add(
            staff_event(
                actor=actor,
                event="token_revoked",
                at=now,
                subject=user,
                data={"token_id": token.id, "name": token.name},
            )
        )
        session.commit()
    return token


@runs_again_as_writer
def end_session(
    session: Session, user_id: int, session_id: int, *, actor: Actor, now: dt.datetime
) -> UserSession:
    """End one of the person's sessions (a shared screen, a lost phone)."""
    require_admin(actor)
    now = require_aware(now)
    with staff_transaction(session):
        user = find_user(session, user_id)
        row = session.get(UserSession, session_id)
        if row is None or row.user_id != user.id or row.ended_at is not None:
            raise NotFound("That session has already ended")
        row.ended_at = now
        session.add(
            staff_event(
                actor=actor,
                event="session_ended",
                at=now,
                subject=user,
                data={"started": row.created_at},
            )
        )
        session.commit()
    return row


@runs_again_as_writer
def end_all_sessions(session: Session, user_id: int, *, actor: Actor, now: dt.datetime) -> User:
    """Sign the person out everywhere (they can sign in again)."""
    require_admin(actor)
    now = require_aware(now)
    with staff_transaction(session):
        user = find_user(session, user_id)
        auth.end_every_session(session, user, now)
        session.add(staff_event(actor=actor, event="sessions_ended", at=now, subject=user))
        session.commit()
    return user


@runs_again_as_writer
def reset_mfa(session: Session, user_id: int, *, actor: Actor, now: dt.datetime) -> User:
    """Two-factor sign-in off (a lost phone): recovery codes spent, every session ended.

    Someone it is required of enrols again at their next sign-in.
    """
    require_admin(actor)
    now = require_aware(now)
    with staff_transaction(session):
        user = find_user(session, user_id)
        if user.totp_secret is None:
            raise ValidationFailed(f"{user.email} has not set up two-factor sign-in")
        auth.clear_mfa(session, user, now=now)
        auth.end_every_session(session, user, now)
        session.add(staff_event(actor=actor, event="mfa_reset", at=now, subject=user))
        session.commit()
    return user
