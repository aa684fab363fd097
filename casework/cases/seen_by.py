"""Who has seen this case: every look at a child's record, for the managers who answer for it.

Read from the case's audit trail, where every view, download and export is a row
(recorded before anything was shown, see :func:`casework.cases.views.record_view`).
Each look is said in words: who (their name and role, from the staff list), when, what
they did and through which door. Only managers and administrators may read it, since
the list names staff and the times they worked.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import Session, col

from casework.audit import REDACTED
from casework.cases.context import Actor
from casework.cases.errors import NotPermitted
from casework.cases.unit import load_case
from casework.cases.words import CHANNEL_WORDS, LOOK_WORDS, ROLE_WORDS, moment_words
from casework.models import CaseEvent, Provider, User

MAY_READ = frozenset({"manager", "admin"})


@dataclass(frozen=True)
class Look:
    """One look at the case, in words."""

    who: str
    role: str
    when: str
    what: str
    through: str
    at: dt.datetime


@dataclass(frozen=True)
class SeenBy:
    reference: str
    looks: list[Look]


def _who(actor_id: str, staff: dict[str, User], providers: dict[int, str]) -> tuple[str, str]:
    """(name, role in words) of the audit trail's actor id."""
    if actor_id == REDACTED:
        return "Someone at the service", "Name removed under the retention schedule"
    if actor_id.startswith("system:"):
        return "The scheduler", "casework itself"
    kind, _, who = actor_id.partition(":")
    user = staff.get(who.lower()) if kind in ("user", "token") else None
    if user is None:
        if kind == "cli":
            return who or "An operator", "Operator at the command line"
        return who or "Someone", "No longer on the staff list"
    role = ROLE_WORDS.get(user.role, "Staff")
    if user.provider_id is not None and user.provider_id in providers:
        role = f"{role} at {providers[user.provider_id]}"
    return user.name or user.email, role


def who_has_seen(session: Session, reference: str, *, actor: Actor) -> SeenBy:
    """Every view, download and export of the case, newest first."""
    if actor.role not in MAY_READ:
        raise NotPermitted("Only a manager can see who has looked at a case.")
    case, _family, _provider = load_case(session, reference)
    rows = list(
        session.execute(
            select(CaseEvent)
            .where(col(CaseEvent.case_id) == case.id, col(CaseEvent.event).in_(list(LOOK_WORDS)))
            .order_by(col(CaseEvent.id).desc())
        ).scalars()
    )
    emails = {
        r.actor.partition(":")[2].lower() for r in rows if r.actor.startswith(("user:", "token:"))
    }
    staff = {
        u.email.lower(): u
        for u in session.execute(select(User).where(col(User.email).in_(sorted(emails)))).scalars()
    }
    providers = {int(p.id or 0): p.name for p in session.execute(select(Provider)).scalars()}
    looks = []
    for row in rows:
        who, role = _who(row.actor, staff, providers)
        looks.append(
            Look(
                who=who,
                role=role,
                when=moment_words(row.at),
                what=LOOK_WORDS[row.event],
                through=CHANNEL_WORDS.get(row.channel, "another way"),
                at=row.at,
            )
        )
    return SeenBy(reference=case.reference, looks=looks)
