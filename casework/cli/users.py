"""``casework user ...``: create people who sign in, and API tokens for integrations.

Passwords are typed at a hidden prompt (twice), never given as an argument, so
they do not end up in shell history. ``--one-time-link`` instead prints a link the
person opens to choose their own password (:func:`casework.auth.set_password_url`).
API tokens are printed once; only their hash is stored.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from sqlalchemy import select
from sqlmodel import Session, col

from casework import auth
from casework.cases import CaseworkError, sync_providers
from casework.cli.common import exit_code, fail
from casework.config import Settings, get_settings
from casework.db import SchemaNotCurrent, ensure_schema, get_engine, session_scope
from casework.models import Provider, Role, User

user_app = typer.Typer(help="People who sign in, and API tokens.", no_args_is_help=True)


@contextmanager
def _session() -> Iterator[tuple[Session, Settings]]:
    settings = get_settings()
    engine = get_engine(settings)
    try:
        ensure_schema(engine, settings)
    except SchemaNotCurrent as exc:
        fail(str(exc), 5)
    with session_scope(engine) as session:
        sync_providers(session, settings)
        yield session, settings


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
        fail(f"--role must be one of {', '.join(Role)}")
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
            fail(str(exc), exit_code(exc))
        where = ""
        if user.provider_id is not None:
            p = session.get(Provider, user.provider_id)
            where = f" for {p.name}" if p else ""
        typer.echo(f"created {user.role} {user.email}{where}")
        if one_time_link:
            typer.echo(
                "Send this link to them (valid for 7 days, once):\n"
                f"{auth.set_password_url(settings, user)}"
            )


@user_app.command("link")
def link(email: Annotated[str, typer.Argument(help="The user's email address.")]) -> None:
    """Print a new one-time set-password link (e.g. after a forgotten password)."""
    with _session() as (session, settings):
        user = session.execute(
            select(User).where(col(User.email) == email.strip().lower())
        ).scalar_one_or_none()
        if user is None:
            fail(f"no user {email}; `casework user list` shows them", 3)
        typer.echo(auth.set_password_url(settings, user))


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
            fail(f"no user {email}; create one with `casework user add`", 3)
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


def _user_named(session: Session, email: str) -> User:
    user = session.execute(
        select(User).where(col(User.email) == email.strip().lower())
    ).scalar_one_or_none()
    if user is None:
        fail(f"no user {email}; `casework user list` shows them", 3)
    assert user is not None
    return user


@user_app.command("password")
def password(email: Annotated[str, typer.Argument(help="The user's email address.")]) -> None:
    """Set a new password (prompted twice); every session of the user ends."""
    new = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    with _session() as (session, _settings):
        user = _user_named(session, email)
        try:
            auth.set_password(session, user, new, now=dt.datetime.now(dt.UTC))
        except CaseworkError as exc:
            session.rollback()
            fail(str(exc), exit_code(exc))
        typer.echo(f"password changed for {user.email}; they are signed out everywhere")


@user_app.command("disable")
def disable(email: Annotated[str, typer.Argument(help="The user's email address.")]) -> None:
    """Stop a user signing in or using API tokens; every session of the user ends."""
    with _session() as (session, _settings):
        user = _user_named(session, email)
        auth.disable_user(session, user, now=dt.datetime.now(dt.UTC))
        typer.echo(f"disabled {user.email}; they are signed out everywhere")


@user_app.command("enable")
def enable(email: Annotated[str, typer.Argument(help="The user's email address.")]) -> None:
    """Let a disabled user sign in again."""
    with _session() as (session, _settings):
        user = _user_named(session, email)
        auth.enable_user(session, user)
        typer.echo(f"enabled {user.email}")


@user_app.command("role")
def role(
    email: Annotated[str, typer.Argument(help="The user's email address.")],
    role: Annotated[str, typer.Option(help="adviser, manager, provider, admin or commissioner.")],
    provider: Annotated[
        str | None, typer.Option(help="Provider staff only: the provider's code or name.")
    ] = None,
) -> None:
    """Give a user another role; every session of the user ends so the new one applies."""
    with _session() as (session, _settings):
        user = _user_named(session, email)
        try:
            changed = auth.change_role(
                session, user, role, now=dt.datetime.now(dt.UTC), provider=provider
            )
        except CaseworkError as exc:
            session.rollback()
            fail(str(exc), exit_code(exc))
            return
        if changed:
            typer.echo(f"{user.email} is now {user.role}; they are signed out everywhere")
        else:
            typer.echo(f"{user.email} is already {user.role}; nothing changed")


@user_app.command("sessions")
def sessions(email: Annotated[str, typer.Argument(help="The user's email address.")]) -> None:
    """The user's sessions still in use: when each began, was last used and ends."""
    from casework.cases.words import moment_words

    with _session() as (session, _settings):
        user = _user_named(session, email)
        live = auth.live_sessions(session, user, now=dt.datetime.now(dt.UTC))
        if not live:
            typer.echo(f"{user.email} is not signed in anywhere")
        for row in live:
            typer.echo(
                f"signed in {moment_words(row.created_at)}; last used"
                f" {moment_words(row.last_seen_at)}; ends {moment_words(row.expires_at)}"
            )


@user_app.command("sign-out")
def sign_out(email: Annotated[str, typer.Argument(help="The user's email address.")]) -> None:
    """End every session of the user now (they can sign in again)."""
    with _session() as (session, _settings):
        user = _user_named(session, email)
        auth.sign_out_everywhere(session, user, now=dt.datetime.now(dt.UTC))
        typer.echo(f"{user.email} is signed out everywhere")
