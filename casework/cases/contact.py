"""Correcting how we reach the family: name, phone, email, notice channels, SMS consent.

A wrong number found after intake must be fixed before the next reminder goes, so a
correction re-validates like intake does and re-addresses the family's notices not
yet sent. Each correction gives a reason and is audited with the old and the new
value of every field it changed, in one transaction.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm.attributes import flag_modified
from sqlmodel import Session, col

from casework.cases.access import check_actor_may_see
from casework.cases.context import Actor
from casework.cases.errors import NotPermitted, TransitionRefused, ValidationFailed
from casework.cases.intake import (
    ADDRESS_FIELDS,
    CHANNEL_CHOICE,
    INTAKE_WORDS,
    MAX_SHORT_TEXT,
    NOTICE_CHANNELS,
    phone_warnings,
)
from casework.cases.notes import IAS_ROLES
from casework.cases.unit import (
    audit_event,
    case_transaction,
    check_seen_version,
    load_case,
    require_aware,
    runs_again_as_writer,
)
from casework.contacts import (
    ContactError,
    can_text,
    check_postal_address,
    normalise_email,
    normalise_phone,
)
from casework.driver import fixed
from casework.models import Notice, NoticeStatus, Person
from casework.notices import NoticeReason, family_contact, reason_text

REASON_MAX = 500
# The role of the family acting on its own page (casework.cases.family).
FAMILY_ROLE = "family"
CONSENT_WORDS = {True: "given", False: "withdrawn"}
NOT_REACHABLE = reason_text(
    NoticeReason.contact_changed,
    "the family's contact details were changed and this way no longer reaches them",
)


def _checked(
    family: Person,
    *,
    name: str | None,
    phone: str | None,
    email: str | None,
    preferred_channels: str | None,
    sms_consent: bool | None,
    address: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The new contact, every field validated; problems named in words, all at once."""
    errors: dict[str, str] = {}

    def fail(field: str, message: str) -> None:
        errors.setdefault(field, f"{INTAKE_WORDS[field]}: {message}")

    new: dict[str, Any] = {
        "name": family.name,
        "phone": family.phone,
        "email": family.email,
        "preferred_channels": family.preferred_channels,
        "sms_consent": family.sms_consent,
    }
    new.update({f: getattr(family, f) for f in ADDRESS_FIELDS})
    if name is not None:
        new["name"] = name.strip()
        if not new["name"]:
            fail("name", "this is needed.")
        elif len(new["name"]) > MAX_SHORT_TEXT:
            fail("name", f"keep it under {MAX_SHORT_TEXT:,} characters.")
    if phone is not None:
        try:
            new["phone"] = normalise_phone(phone)
        except ContactError as exc:
            fail("phone", exc.message + ".")
    if email is not None:
        try:
            new["email"] = normalise_email(email)
        except ContactError as exc:
            fail("email", exc.message + ".")
    if preferred_channels is not None:
        chosen = [c.strip() for c in preferred_channels.split(",") if c.strip()]
        if not chosen or any(c not in NOTICE_CHANNELS for c in chosen):
            fail("preferred_channels", CHANNEL_CHOICE)
        else:
            # Stored in one order whatever order they were ticked in.
            new["preferred_channels"] = ",".join(c for c in NOTICE_CHANNELS if c in chosen)
    if sms_consent is not None:
        new["sms_consent"] = bool(sms_consent)
    if new["preferred_channels"] == "email" and not new["email"] and "email" not in errors:
        fail("email", "give an address for email notices, or choose text messages.")
    given = {f: (address or {}).get(f) for f in ADDRESS_FIELDS}
    merged = {f: str(given[f] if given[f] is not None else new[f]) for f in ADDRESS_FIELDS}
    checked, problems = check_postal_address(
        merged["address_line_1"],
        merged["address_line_2"],
        merged["address_town"],
        merged["address_postcode"],
        required="post" in new["preferred_channels"].split(","),
    )
    new.update(checked)
    for field, message in problems.items():
        fail(field, message + ".")
    if errors:
        first = next(iter(errors))
        raise ValidationFailed(" ".join(errors.values()), field=first)
    return new


def _usable(channel: str, family: Person) -> str:
    if channel == "sms":
        if family.sms_consent and family.phone and can_text(family.phone):
            return family.phone
        return ""
    if channel == "post":
        return "\n".join(family_contact(family).postal)
    return family.email


def readdress_unsent(session: Session, case_id: int, family: Person) -> int:
    """Point the family's queued notices at the new details; returns how many changed.

    A notice whose channel no longer reaches the family moves to the other channel
    (unless the same message is already waiting there), as a reminder of a legal
    deadline must reach them somehow: by post when neither email nor SMS does and an
    address is held; if nothing reaches them it is skipped, saying why.
    """
    queued = list(
        session.execute(
            select(Notice).where(
                col(Notice.case_id) == case_id,
                col(Notice.recipient_role) == "family",
                col(Notice.status) == fixed(NoticeStatus.queued),
            )
        ).scalars()
    )
    waiting = {(n.template, n.deadline_id, n.not_before, n.channel) for n in queued}
    changed = 0
    for notice in queued:
        channel = notice.channel
        if channel == "post":
            candidates = ["post", "email", "sms"]
        else:
            # A letter only when neither email nor SMS reaches the family any more.
            candidates = [channel, "email" if channel == "sms" else "sms", "post"]
        # The family's chosen ways first, then whatever still reaches them.
        order = [c for c in candidates if c in family.channels] + candidates
        found = [
            (c, address)
            for c in order
            if (address := _usable(c, family))
            and (
                c == channel
                or (notice.template, notice.deadline_id, notice.not_before, c) not in waiting
            )
        ]
        if not found:
            notice.status = NoticeStatus.skipped
            notice.last_error = NOT_REACHABLE
            changed += 1
            continue
        new_channel, address = found[0]
        if (new_channel, address) != (channel, notice.to_address):
            notice.channel, notice.to_address = new_channel, address
            # Two channels moving to one (both to post): the second is not a duplicate.
            waiting.add((notice.template, notice.deadline_id, notice.not_before, new_channel))
            changed += 1
    return changed


@runs_again_as_writer
def update_contact(
    session: Session,
    reference: str,
    *,
    reason: str,
    now: dt.datetime,
    actor: Actor,
    name: str | None = None,
    phone: str | None = None,
    email: str | None = None,
    preferred_channels: str | None = None,
    sms_consent: bool | None = None,
    address: dict[str, str] | None = None,
    expected_version: int | None = None,
) -> Person:
    """Correct the family's contact; a field left as None keeps its value.

    ``address`` holds any of the postal address fields (``address_line_1``,
    ``address_line_2``, ``address_town``, ``address_postcode``) to change. A number we
    cannot text, given (or kept) with text messages chosen, is saved all the same with
    a warning on the audit row, which the case page shows the adviser.
    """
    now = require_aware(now)
    why = (reason or "").strip()
    with case_transaction(session, reference):
        with session.no_autoflush:
            case, family, _provider = load_case(session, reference)
            check_actor_may_see(case, actor)
            check_seen_version(case, expected_version)
            if actor.role == FAMILY_ROLE:
                # On its own page the family chooses how it hears from us; a new number
                # or address is checked with them by the adviser first.
                if name is not None or phone is not None or email is not None:
                    raise NotPermitted(
                        "Your name, phone number and email address are changed by your"
                        " adviser: call us and we will update them."
                    )
            elif actor.role not in IAS_ROLES:
                raise NotPermitted(
                    "The family's contact is kept by the IAS adviser; ask them to correct it."
                )
            if family is None:
                raise TransitionRefused(f"{case.reference} has no family contact to correct.")
            new = _checked(
                family,
                name=name,
                phone=phone,
                email=email,
                preferred_channels=preferred_channels,
                sms_consent=sms_consent,
                address=address,
            )
            if not why:
                raise ValidationFailed(
                    "Why the contact is being changed: this is needed.", field="reason"
                )
            if len(why) > REASON_MAX:
                raise ValidationFailed(
                    f"Why the contact is being changed: keep it to {REASON_MAX} characters or"
                    " fewer.",
                    field="reason",
                )
            data: dict[str, Any] = {}
            for field, value in new.items():
                old = getattr(family, field)
                if value == old:
                    continue
                if field == "sms_consent":
                    data[field], data[f"{field}_was"] = CONSENT_WORDS[value], CONSENT_WORDS[old]
                else:
                    data[field], data[f"{field}_was"] = value, old
                setattr(family, field, value)
            if not data:
                raise ValidationFailed(
                    "Nothing to change: the contact details given are the ones held."
                )
            if {"phone", "preferred_channels"} & data.keys():
                warnings = phone_warnings(family.phone, family.channels)
                if warnings:
                    data["warning"] = " ".join(warnings)
            readdressed = readdress_unsent(session, case.id, family)  # type: ignore[arg-type]
            if readdressed:
                data["notices_readdressed"] = readdressed
            case.updated_at = now
            flag_modified(case, "updated_at")
            session.add(
                audit_event(
                    case,
                    actor=actor,
                    event="update_contact",
                    at=now,
                    from_state=case.state,
                    data=data,
                    note=why,
                )
            )
        session.commit()
    session.refresh(family)
    return family
