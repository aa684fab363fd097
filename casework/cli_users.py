"""``casework user ...``: create people who sign in, and API tokens for integrations.

Passwords are typed at a hidden prompt (twice), never given as an argument, so
they do not end up in shell history. ``--one-time-link`` instead prints a link the
person opens to choose their own password: a signed, expiring token that stops
working once a password is set, because it is bound to the current password hash.
API tokens are printed once; only their hash is stored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select
from sqlmodel import Session, col

from casework import auth
from casework.config import Settings, get_settings
from casework.db import ensure_schema, get_engine, session_scope
from casework.models import Provider, Role, User
from casework.services import CaseworkError, sync_providers

SET_PASSWORD_MAX_AGE = dt.timedelta(days=7)
_SALT = "casework.set-password"

user_app = typer.Typer(help="People who sign in, and API tokens.", no_args_is_help=True)


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key, salt=_SALT)


def _hash_fingerprint(user: User) -> str:
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def make_set_password_token(settings: Settings, user: User) -> str:
    """A link token valid for 7 days and only until the user's password changes."""
    return _serializer(settings).dumps({"u": user.id, "h": _hash_fingerprint(user)})


def user_for_set_password_token(session: Session, settings: Settings, token: str) -> User | None:
    """The user a set-password token is for, or None if forged, expired or already used."""
    try:
        payload: Any = _serializer(settings).loads(
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


@contextmanager
def _session() -> Iterator[tuple[Session, Settings]]:
    settings = get_settings()
    engine = get_engine(settings)
    ensure_schema(engine)
    with session_scope(engine) as session:
        sync_providers(session, settings)
        yield session, settings


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@user_app.command("add")
def add(
    email: Annotated[str, typer.Argument(help="The person's email address (their sign-in name).")],
    role: Annotated[str, typer.Option(help="adviser, manager, provider, admin or commissioner.")],
    provider: Annotated[
        str | None, typer.Option(help="Provider staff only: the provider's code or name.")
    ] = None,
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    one_time_link: Annotated[
        bool,
        typer.Option(
            "--one-time-link", help="Print a link to choose a password instead of prompting."
        ),
    ] = False,
) -> None:
    """Create a user; the password is prompted (twice) or set through a one-time link."""
    if role not in Role.__members__:
        _fail(f"--role must be one of {', '.join(Role)}")
    password = None
    if not one_time_link:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    with _session() as (session, settings):
        try:
            user = auth.create_user(
                session,
                email=email,
                role=role,
                now=dt.datetime.now(dt.UTC),
                password=password,
                name=name,
                provider=provider,
            )
        except CaseworkError as exc:
            session.rollback()
            _fail(str(exc), exc.exit_code)
            return
        where = ""
        if user.provider_id is not None:
            p = session.get(Provider, user.provider_id)
            where = f" for {p.name}" if p else ""
        typer.echo(f"created {user.role} {user.email}{where}")
        if one_time_link:
            typer.echo(
                "Send this link to them (valid for 7 days, once):\n"
                f"{set_password_url(settings, user)}"
            )


@user_app.command("link")
def link(email: Annotated[str, typer.Argument(help="The user's email address.")]) -> None:
    """Print a new one-time set-password link (e.g. after a forgotten password)."""
    with _session() as (session, settings):
        user = session.execute(
            select(User).where(col(User.email) == email.strip().lower())
        ).scalar_one_or_none()
        if user is None:
            _fail(f"no user {email}; `casework user list` shows them", 3)
            return
        typer.echo(set_password_url(settings, user))


@user_app.command("token")
def token(
    email: Annotated[str, typer.Argument(help="The user the token acts as.")],
    name: Annotated[str, typer.Option(help="What the token is for, e.g. 'LA case system'.")],
) -> None:
    """Create an API bearer token; it is printed once and cannot be shown again."""
    with _session() as (session, _settings):
        user = session.execute(
            select(User).where(col(User.email) == email.strip().lower())
        ).scalar_one_or_none()
        if user is None:
            _fail(f"no user {email}; create one with `casework user add`", 3)
            return
        value = auth.create_api_token(session, user, name=name, now=dt.datetime.now(dt.UTC))
        typer.echo(value)
        typer.echo(
            "Store it now: it is not kept and cannot be shown again. Send it as"
            " 'Authorization: Bearer <token>'.",
            err=True,
        )


@user_app.command("list")
def list_users() -> None:
    """Everyone who can sign in, with role and provider."""
    with _session() as (session, _settings):
        providers = {p.id: p.name for p in session.execute(select(Provider)).scalars()}
        users = session.execute(select(User).order_by(col(User.email))).scalars()
        for u in users:
            where = f" ({providers.get(u.provider_id, '?')})" if u.provider_id else ""
            state = "" if u.active else " [inactive]"
            typer.echo(f"{u.email:<40} {u.role}{where}{state}")
