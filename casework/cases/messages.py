"""A one-off message from the adviser to the family, by email or text message.

It is a notice like every other: a row in the outbox written in the same
transaction as its one audit row, delivered by the dispatcher, shown on the
timeline with its delivery. So it honours what every family notice honours: only
a way that reaches the family (an email address; a mobile number they agreed to be
texted on), no text in the quiet hours (it waits for the morning), and an
idempotency key, so a form sent twice or a retried API call messages them once.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from sqlalchemy import select
from sqlmodel import Session, col

from casework.cases.access import check_actor_may_see
from casework.cases.context import Actor
from casework.cases.errors import NotPermitted, ValidationFailed
from casework.cases.notes import IAS_ROLES
from casework.cases.unit import (
    audit_event,
    case_transaction,
    load_case,
    require_aware,
    runs_again_as_writer,
)
from casework.cases.words import CHANNEL_WORDS
from casework.config import Settings
from casework.contacts import can_text
from casework.models import Notice, Person
from casework.notices import CaseFacts, FamilyContact, base_context, insert_notices, notice_row

TEMPLATE = "one_off_message"
EVENT = "send_message"
CHANNELS = ("email", "sms")  # their words: casework.cases.words.CHANNEL_WORDS
# A text of up to 4 parts; an email of a few paragraphs (longer belongs in a letter).
TEXT_MAX = {"sms": 600, "email": 5000}
KEY_MAX = 100


def _address(family: Person | None, channel: str) -> str:
    """Where ``channel`` reaches the family, or a refusal saying why it cannot."""
    if family is None:
        raise ValidationFailed(
            "Send by: the case has no family contact; add their details first.", field="channel"
        )
    if channel == "email":
        if not family.email:
            raise ValidationFailed(
                "Send by: the family has no email address; add one to their contact details"
                " or send a text message.",
                field="channel",
            )
        return family.email
    if not family.phone or not can_text(family.phone):
        raise ValidationFailed(
            "Send by: the family has no mobile number to text (we text only UK mobile"
            " numbers); send an email, or add a mobile number to their contact details.",
            field="channel",
        )
    if not family.sms_consent:
        raise ValidationFailed(
            "Send by: the family has not agreed to text messages; send an email instead.",
            field="channel",
        )
    return family.phone


def check_message(channel: str, text: str) -> tuple[str, str]:
    """The channel and the text, each checked, errors naming the field in words."""
    way = (channel or "").strip().lower()
    if way not in CHANNELS:
        raise ValidationFailed("Send by: choose email or text message.", field="channel")
    body = "\n".join(line.rstrip() for line in (text or "").strip().splitlines())
    if not body:
        raise ValidationFailed("Message: write what to tell the family.", field="text")
    limit = TEXT_MAX[way]
    if len(body) > limit:
        raise ValidationFailed(
            f"Message: keep {'an' if way == 'email' else 'a'} {CHANNEL_WORDS[way]} to"
            f" {limit:,} characters or fewer"
            f" (it has {len(body):,}).",
            field="text",
        )
    return way, body


@runs_again_as_writer
def send_message(
    session: Session,
    reference: str,
    *,
    channel: str,
    text: str,
    now: dt.datetime,
    actor: Actor,
    settings: Settings,
    key: str = "",
) -> Notice:
    """Queue a one-off message to the family; the notice (an earlier one for the same key).

    ``key`` is the caller's idempotency key (the form's, an API client's); without
    one the message is keyed by its own content and minute, so the same text sent
    twice within a minute goes once.
    """
    now = require_aware(now)
    if actor.role not in IAS_ROLES:
        raise NotPermitted("Messages to the family are sent by the IAS service's staff.")
    way, body = check_message(channel, text)
    if len(key) > KEY_MAX:
        raise ValidationFailed(
            f"Idempotency key: keep it to {KEY_MAX} characters or fewer.", field="key"
        )
    with case_transaction(session, reference):
        with session.no_autoflush:
            case, family, _provider = load_case(session, reference)
            check_actor_may_see(case, actor)
            address = _address(family, way)
            assert family is not None and case.id is not None
            digest = hashlib.sha256(
                (key or f"{actor.id}|{now:%Y%m%dT%H%M}|{body}").encode()
            ).hexdigest()[:32]
            idempotency_key = f"case:{case.id}:message:{way}:{digest}"
            facts = CaseFacts(
                case_id=case.id,
                reference=case.reference,
                kind=case.kind,
                state=case.state,
                family=FamilyContact(
                    family.name,
                    family.phone,
                    family.email,
                    tuple(family.channels),
                    family.sms_consent,
                ),
            )
            row = notice_row(
                key=idempotency_key,
                facts=facts,
                template=TEMPLATE,
                recipient="family",
                channel=way,
                address=address,
                context=base_context(facts, settings)
                | {"message_text": body, "notice_kind": "message"},
                not_before=now,
                now=now,
                settings=settings,
            )
            # The same key again (a form sent twice, a retried call) inserts nothing and
            # so records nothing: the family is messaged, and the trail says so, once.
            if insert_notices(session, [row]):
                session.add(
                    audit_event(
                        case,
                        actor=actor,
                        event=EVENT,
                        at=now,
                        from_state=case.state,
                        data={"channel": way, "text": body},
                    )
                )
        session.commit()
    notice = _existing(session, idempotency_key)
    assert notice is not None
    return notice


def _existing(session: Session, idempotency_key: str) -> Notice | None:
    return session.execute(
        select(Notice).where(col(Notice.idempotency_key) == idempotency_key)
    ).scalar_one_or_none()
