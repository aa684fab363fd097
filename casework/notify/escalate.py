"""What a person must be told when delivery fails, as outbox rows for the caller's transaction.

Nothing here opens a transaction: the dispatcher and the receipt applier insert
these rows in the same transaction that fails the notice (or raises the alarm), so
a crash can never leave a failed notice whose escalation was lost.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from casework.config import Settings
from casework.models import Case, DeliveryAlarm, Notice, NoticeStatus, Person
from casework.notices import outbox_row, postal_lines
from casework.notify.render import render

log = logging.getLogger("casework.escalate")

CREDENTIAL_REJECTED = "credential_rejected"
_PROVIDER_LABELS = {"sendgrid": "SendGrid", "twilio": "Twilio"}
_CHANNEL_LABELS = {"email": "e-mails", "sms": "text messages"}


def delivery_failed_row(
    row: Any, now: dt.datetime, reason: str, settings: Settings
) -> dict[str, Any] | None:
    """'Could not deliver' to the adviser (or the manager if the adviser's failed).

    ``None`` for a failed notice to the manager: there is nobody further up to tell,
    so it is logged (without personal data) instead.
    """
    if row.recipient_role == "manager":
        log.error("notice to the manager failed", extra={"notice_id": row.public_id})
        return None
    to_role = "manager" if row.recipient_role == "adviser" else "adviser"
    address = settings.team.manager_email if to_role == "manager" else settings.team.adviser_email
    context = dict(row.context or {})
    context.update(
        {
            "notice_kind": "escalation",
            "failed_channel": row.channel,
            "failed_template": row.template,
            "failed_recipient": row.recipient_role,
            "reason": reason,
        }
    )
    context.setdefault(
        "case_link", f"{settings.public_url.rstrip('/')}/cases/{context.get('reference', '')}"
    )
    context.setdefault("reference", "")
    return outbox_row(
        key=f"notice:{row.id}:failed:{to_role}:email",
        case_id=row.case_id,
        template="escalation_delivery_failed",
        recipient=to_role,
        channel="email",
        address=address,
        context=context,
        not_before=now,
        now=now,
    )


_DIGITAL = ("email", "sms")
# A sibling notice in one of these may still reach the family: no letter yet.
_MAY_STILL_ARRIVE = (
    NoticeStatus.queued,
    NoticeStatus.sending,
    NoticeStatus.sent,
    NoticeStatus.delivered,
)


def letter_fallback_row(conn: Connection, row: Any, now: dt.datetime) -> dict[str, Any] | None:
    """A letter instead of a family notice that email and SMS could not deliver.

    Called in the transaction that fails ``row`` permanently. The same message went
    out on every channel the family uses (one notice each, created together); only
    when none of them can still arrive, and the family has a postal address, is the
    message queued again as a letter (channel ``post``) for the dispatcher to print.
    One letter per message: its key is shared by the siblings, so the last of two
    failures does not print a second.
    """
    if row.recipient_role != "family" or row.case_id is None or row.channel not in _DIGITAL:
        return None
    if conn.dialect.name == "postgresql":
        # The email and the SMS of one message can fail at the same moment in two
        # senders: each would see the other still sending and neither would write the
        # letter. Taking the case row's lock orders them: the second reads the first's
        # committed failure. (SQLite already serialises the two writing transactions.)
        # FOR NO KEY UPDATE: the escalation just inserted holds a KEY SHARE lock on the
        # case (its foreign key); FOR UPDATE would wait on the other sender's, and it
        # on ours: a deadlock.
        c = Case.__table__  # type: ignore[attr-defined]
        conn.execute(select(c.c.id).where(c.c.id == row.case_id).with_for_update(key_share=True))
    n = Notice.__table__  # type: ignore[attr-defined]
    alive = conn.execute(
        select(n.c.id)
        .where(
            n.c.case_id == row.case_id,
            n.c.recipient_role == "family",
            n.c.template == row.template,
            n.c.created_at == row.created_at,
            n.c.id != row.id,
            n.c.status.in_([s.value for s in _MAY_STILL_ARRIVE]),
        )
        .limit(1)
    ).first()
    if alive is not None:
        return None
    p = Person.__table__  # type: ignore[attr-defined]
    family = conn.execute(
        select(p).where(p.c.case_id == row.case_id, p.c.role == "family").limit(1)
    ).first()
    if family is None:
        return None
    lines = postal_lines(
        family.name,
        family.address_line_1,
        family.address_line_2,
        family.address_town,
        family.address_postcode,
    )
    if not lines:
        return None
    group = str(row.idempotency_key).rsplit(":", 1)[0]
    return outbox_row(
        key=f"{group}:post-after-failure",
        case_id=row.case_id,
        template=row.template,
        recipient="family",
        channel="post",
        address="\n".join(lines),
        context=dict(row.context or {}) | {"after_failure": True},
        not_before=now,
        now=now,
        deadline_id=row.deadline_id,
    )


def alarm_opened_at(conn: Connection, provider: str) -> dt.datetime | None:
    """When the provider's open credential alarm began; ``None`` when none is open."""
    alarms = DeliveryAlarm.__table__  # type: ignore[attr-defined]
    opened: dt.datetime | None = conn.execute(
        select(alarms.c.opened_at).where(
            alarms.c.provider == provider,
            alarms.c.kind == CREDENTIAL_REJECTED,
            alarms.c.open.is_(True),
        )
    ).scalar()
    return opened


def open_credential_alarm(conn: Connection, provider: str, now: dt.datetime) -> int | None:
    """Open the provider's credential alarm unless it is open already.

    Returns the new episode's number when this call opened it (the caller then
    queues the one escalation), ``None`` when it was open already. Safe under
    concurrent workers: the conditional UPDATE and the conflict-ignoring INSERT let
    exactly one of them open an episode.
    """
    alarms = DeliveryAlarm.__table__  # type: ignore[attr-defined]
    episode: int | None = conn.execute(
        update(alarms)
        .where(
            alarms.c.provider == provider,
            alarms.c.kind == CREDENTIAL_REJECTED,
            alarms.c.open.is_(False),
        )
        .values(open=True, episode=alarms.c.episode + 1, opened_at=now, closed_at=None)
        .returning(alarms.c.episode)
    ).scalar()
    if episode is None:
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        episode = conn.execute(
            insert(alarms)
            .values(
                provider=provider, kind=CREDENTIAL_REJECTED, episode=1, open=True, opened_at=now
            )
            .on_conflict_do_nothing()
            .returning(alarms.c.episode)
        ).scalar()
    return episode


def close_alarms(conn: Connection, provider: str, now: dt.datetime) -> None:
    """A send through ``provider`` succeeded: its key works, so any alarm episode ends."""
    alarms = DeliveryAlarm.__table__  # type: ignore[attr-defined]
    conn.execute(
        update(alarms)
        .where(alarms.c.provider == provider, alarms.c.open.is_(True))
        .values(open=False, closed_at=now)
    )


def credential_alarm_row(
    provider: str, channel: str, episode: int, now: dt.datetime, reason: str, settings: Settings
) -> dict[str, Any]:
    """The one message to the manager for an alarm episode (its key names the episode).

    Its subject is rendered now, not at sending: when the refused key is SendGrid's,
    this e-mail waits too, and the manager page shows it meanwhile by its subject.
    """
    row = outbox_row(
        key=f"alarm:{CREDENTIAL_REJECTED}:{provider}:{episode}",
        case_id=None,
        template="escalation_credentials_rejected",
        recipient="manager",
        channel="email",
        address=settings.team.manager_email,
        context={
            "notice_kind": "escalation",
            "reference": "",
            "provider_label": _PROVIDER_LABELS.get(provider, provider),
            "channel_label": _CHANNEL_LABELS.get(channel, "messages"),
            "reason": reason,
            "case_link": f"{settings.public_url.rstrip('/')}/manager",
        },
        not_before=now,
        now=now,
    )
    row["subject"] = render(row["template"], "email", row["context"])[0][:300]
    return row
