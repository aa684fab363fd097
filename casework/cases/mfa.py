"""Two-factor sign-in: who must use it, enrolling, and the code step of signing in.

Managers and administrators must use it (they decide who has access and see every
case); other roles must when the service lists them in ``mfa_also_required_for``.
Someone who must and has not enrolled is sent to enrol before any other page
(the web door asks :func:`must_enrol` on every request).

The codes and secrets themselves (TOTP through pyotp, the encrypted secret,
recovery-code hashes, the attempt count shared with passwords) are kept in
:mod:`casework.auth`; this module holds the rules and writes the audit rows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlmodel import Session

from casework import auth
from casework.cases.context import Actor
from casework.cases.errors import ValidationFailed
from casework.cases.unit import require_aware, runs_again_as_writer
from casework.cases.users import staff_event, staff_transaction
from casework.config import Settings
from casework.models import Role, User

ALWAYS_REQUIRED = frozenset({Role.manager, Role.admin})


def mfa_required(user: User, settings: Settings) -> bool:
    """Whether this person must sign in with a second factor."""
    return user.role in ALWAYS_REQUIRED or user.role in settings.mfa_also_required_for


def must_enrol(user: User, settings: Settings) -> bool:
    """Required of them and not yet on: no page but enrolment until it is."""
    return mfa_required(user, settings) and not user.mfa_on


@dataclass(frozen=True)
class Enrolment:
    """What the enrolment page shows: the secret (in groups of 4) and the app's address."""

    secret: str
    uri: str

    @property
    def grouped(self) -> str:
        return " ".join(self.secret[i : i + 4] for i in range(0, len(self.secret), 4))


@runs_again_as_writer
def start_enrolment(
    session: Session, settings: Settings, user: User, *, now: dt.datetime
) -> Enrolment:
    """A secret for the person's authenticator app, kept (encrypted) until confirmed.

    Not audited: nothing about how the person signs in changes until a code confirms
    it (:func:`confirm_enrolment`, audited). Showing the page again shows the same
    secret, so a reload does not break an app already scanned.
    """
    require_aware(now)
    if user.mfa_on:
        raise ValidationFailed("Two-factor sign-in is already on for you")
    secret = auth.open_secret(settings, user.totp_secret)
    if secret is None:
        secret = auth.new_totp_secret()
        with staff_transaction(session):
            user.totp_secret = auth.seal_secret(settings, secret)
            session.commit()
    return Enrolment(secret, auth.totp_uri(secret, email=user.email, issuer=settings.service.name))


@runs_again_as_writer
def confirm_enrolment(
    session: Session,
    settings: Settings,
    user: User,
    code: str,
    *,
    actor: Actor,
    now: dt.datetime,
) -> list[str]:
    """Turn two-factor sign-in on with a code from the app; the 10 recovery codes, once."""
    now = require_aware(now)
    if user.mfa_on:
        raise ValidationFailed("Two-factor sign-in is already on for you")
    secret = auth.open_secret(settings, user.totp_secret)
    if secret is None:
        raise ValidationFailed("Start again: scan the new QR code", field="code")
    if not code.strip():
        raise ValidationFailed("Enter the 6-digit code from your authenticator app", field="code")
    step = auth.matching_step(secret, code, now)
    if step is None:
        raise ValidationFailed(
            "The code is not right: enter the 6 digits your app shows now for this service",
            field="code",
        )
    with staff_transaction(session):
        user.totp_enabled_at = now
        user.totp_last_step = step
        codes = auth.new_recovery_codes(session, user, now=now)
        session.add(staff_event(actor=actor, event="mfa_enrolled", at=now, subject=user))
        session.commit()
    return codes


@runs_again_as_writer
def renew_recovery_codes(
    session: Session, user: User, *, actor: Actor, now: dt.datetime
) -> list[str]:
    """Ten new recovery codes (the old ones stop working), shown once."""
    now = require_aware(now)
    if not user.mfa_on:
        raise ValidationFailed("Turn on two-factor sign-in first")
    with staff_transaction(session):
        codes = auth.new_recovery_codes(session, user, now=now)
        session.add(staff_event(actor=actor, event="recovery_codes_renewed", at=now, subject=user))
        session.commit()
    return codes


def sign_in_with_code(
    session: Session, settings: Settings, user: User, code: str, *, now: dt.datetime
) -> auth.CodeAccepted:
    """The code step after a right password: a TOTP code or a recovery code.

    Raises :class:`casework.auth.SignInFailed` (the same words whatever went wrong). A
    recovery code's use is audited, so a person who did not use one can be told.
    """
    now = require_aware(now)

    def record(codes_left: int) -> None:
        session.add(
            staff_event(
                actor=auth.actor_for(user, "web"),
                event="recovery_code_used",
                at=now,
                subject=user,
                data={"codes_left": codes_left},
            )
        )

    return auth.authenticate_code(session, settings, user, code, now=now, on_recovery_code=record)
