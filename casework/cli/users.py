"""``casework user ...``: create people who sign in, and API tokens for integrations.

Passwords are typed at a hidden prompt (twice), never given as an argument, so
they do not end up in shell history. ``--one-time-link`` instead prints a link the
person opens to choose their own password (:func:`casework.auth.set_password_url`).
API tokens are printed once; only their hash is stored.

Every change goes through the same use cases as the admin pages
(:mod:`casework.cases.users`), acting as an administrator (whoever runs the CLI has
the server), so each is audited in the staff chain with the operator's name.
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
from casework.cases import Actor, CaseworkError, sync_providers
from casework.cases import users as user_cases
from casework.cases.words import role_words
from casework.cli.common import cli_actor, exit_code, fail
from casework.config import Settings, get_settings
from casework.db import SchemaNotCurrent, ensure_schema, get_engine, session_scope
from casework.models import Provider, User

user_app = typer.Typer(help="People who sign in, and API tokens.", no_args_is_help=True)


def _admin() -> Actor:
    """The operator, acting as an administrator (the audit row names them)."""
    return Actor(id=cli_actor().id, role="admin", channel="cli")


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
    try:
        # Refused before the password prompt: nobody types a password for a refused user.
        user_cases.check_role(role, provider)
    except CaseworkError as exc:
        fail(str(exc), exit_code(exc))
    password = None
    if not one_time_link:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    with _session() as (session, settings):
        try:
            invited = user_cases.add_user(
                session,
                settings,
                email=email,
                role=role,
                now=dt.datetime.now(dt.UTC),
                password=password,
                name=name,
                provider=provider,
                actor=_admin(),
            )
        except CaseworkError as exc:
            fail(str(exc), exit_code(exc))
        user = invited.user
        where = ""
        if user.provider_id is not None:
            p = session.get(Provider, user.provider_id)
            where = f" for {p.name}" if p else ""
        typer.echo(f"created {user.email}{where}: {role_words(user.role)}")
        if one_time_link:
            typer.echo(f"Send this link to them (valid for 7 days, once):\n{invited.link}")


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
        user = _user_named(session, email)
        try:
            issued = user_cases.issue_api_token(
                session, _id(user), name=name, actor=_admin(), now=dt.datetime.now(dt.UTC)
            )
        except CaseworkError as exc:
            fail(str(exc), exit_code(exc))
        typer.echo(issued.value)
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
            state = "" if u.active else ", disabled"
            mfa = ", two-factor on" if u.mfa_on else ""
            typer.echo(f"{u.email:<40} {role_words(u.role)}{where}{mfa}{state}")


def _id(user: User) -> int:
    assert user.id is not None
    return user.id


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
            user_cases.set_password(
                session, _id(user), new, actor=_admin(), now=dt.datetime.now(dt.UTC)
            )
        except CaseworkError as exc:
            fail(str(exc), exit_code(exc))
        typer.echo(f"password changed for {user.email}; they are signed out everywhere")


@user_app.command("disable")
def disable(email: Annotated[str, typer.Argument(help="The user's email address.")]) -> None:
    """Stop a user signing in; every session ends and every API token is revoked."""
    with _session() as (session, _settings):
        user = _user_named(session, email)
        try:
            user_cases.disable_user(session, _id(user), actor=_admin(), now=dt.datetime.now(dt.UTC))
        except CaseworkError as exc:
            fail(str(exc), exit_code(exc))
        typer.echo(
            f"disabled {user.email}; they are signed out everywhere and their API tokens"
            " are revoked"
        )


@user_app.command("enable")
def enable(email: Annotated[str, typer.Argument(help="The user's email address.")]) -> None:
    """Let a disabled user sign in again."""
    with _session() as (session, _settings):
        user = _user_named(session, email)
        try:
            user_cases.enable_user(session, _id(user), actor=_admin(), now=dt.datetime.now(dt.UTC))
        except CaseworkError as exc:
            fail(str(exc), exit_code(exc))
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
            changed = user_cases.change_role(
                session,
                _id(user),
                role,
                provider=provider,
                actor=_admin(),
                now=dt.datetime.now(dt.UTC),
            )
        except CaseworkError as exc:
            fail(str(exc), exit_code(exc))
            return
        if changed:
            typer.echo(
                f"{user.email} is now {role_words(user.role)}; they are signed out everywhere"
            )
        else:
            typer.echo(f"{user.email} is already {role_words(user.role)}; nothing changed")


@user_app.command("sessions")
def sessions(email: Annotated[str, typer.Argument(help="The user's email address.")]) -> None:
    """The user's sessions still in use: when each began, was last used and ends."""
    from casework.cases.words import device_words, moment_words

    with _session() as (session, _settings):
        user = _user_named(session, email)
        live = auth.live_sessions(session, user, now=dt.datetime.now(dt.UTC))
        if not live:
            typer.echo(f"{user.email} is not signed in anywhere")
        for row in live:
            typer.echo(
                f"{device_words(row.user_agent)}: signed in {moment_words(row.created_at)};"
                " last used"
                f" {moment_words(row.last_seen_at)}; ends {moment_words(row.expires_at)}"
            )


@user_app.command("sign-out")
def sign_out(email: Annotated[str, typer.Argument(help="The user's email address.")]) -> None:
    """End every session of the user now (they can sign in again)."""
    with _session() as (session, _settings):
        user = _user_named(session, email)
        user_cases.end_all_sessions(session, _id(user), actor=_admin(), now=dt.datetime.now(dt.UTC))
        typer.echo(f"{user.email} is signed out everywhere")


@user_app.command("reset")
def reset(email: Annotated[str, typer.Argument(help="The user's email address.")]) -> None:
    """Reset a forgotten sign-in: the password stops working; print a new one-time link."""
    with _session() as (session, settings):
        user = _user_named(session, email)
        try:
            invited = user_cases.reset_sign_in(
                session, settings, _id(user), actor=_admin(), now=dt.datetime.now(dt.UTC)
            )
        except CaseworkError as exc:
            fail(str(exc), exit_code(exc))
        typer.echo(
            f"{user.email} is signed out everywhere; send this link (valid for 7 days, once):"
        )
        typer.echo(invited.link)


@user_app.command("tokens")
def tokens(email: Annotated[str, typer.Argument(help="The user's email address.")]) -> None:
    """The user's API tokens: number, name, when made and last used, revoked or not."""
    from casework.cases.words import moment_words

    with _session() as (session, _settings):
        user = _user_named(session, email)
        detail = user_cases.user_detail(
            session, _id(user), actor=_admin(), now=dt.datetime.now(dt.UTC)
        )
        if not detail.tokens:
            typer.echo(f"{user.email} has no API tokens")
        for t in detail.tokens:
            state = (
                f"revoked {moment_words(t.revoked_at)}"
                if t.revoked_at
                else f"last used {moment_words(t.last_used_at) or 'never'}"
            )
            typer.echo(f"{t.id:>4}  {t.name}: made {moment_words(t.created_at)}; {state}")


@user_app.command("revoke-token")
def revoke_token(
    email: Annotated[str, typer.Argument(help="The user's email address.")],
    number: Annotated[int, typer.Argument(help="The token's number (`casework user tokens`).")],
) -> None:
    """Revoke one API token of the user: it stops working at its next request."""
    with _session() as (session, _settings):
        user = _user_named(session, email)
        try:
            token = user_cases.revoke_api_token(
                session, _id(user), number, actor=_admin(), now=dt.datetime.now(dt.UTC)
            )
        except CaseworkError as exc:
            fail(str(exc), exit_code(exc))
        typer.echo(f"revoked the token '{token.name}' of {user.email}")


@user_app.command("reset-mfa")
def reset_mfa(email: Annotated[str, typer.Argument(help="The user's email address.")]) -> None:
    """Turn off a user's two-factor sign-in (a lost phone); they enrol again if required."""
    with _session() as (session, _settings):
        user = _user_named(session, email)
        try:
            user_cases.reset_mfa(session, _id(user), actor=_admin(), now=dt.datetime.now(dt.UTC))
        except CaseworkError as exc:
            fail(str(exc), exit_code(exc))
        typer.echo(f"two-factor sign-in is off for {user.email}; they are signed out everywhere")
